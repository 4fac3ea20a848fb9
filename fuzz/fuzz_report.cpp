// libFuzzer target: report files, as `bench_runner compare` and `validate` read them. Any input
// must end in a parsed-and-accepted report or a ReportError/parse error, never a crash, a hang,
// an uncaught exception or a sanitizer report. An accepted report is then compared with itself,
// normalized and not, and formatted every way, since compare trusts what validate accepted.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "concbench/compare.hpp"
#include "concbench/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nlohmann::json;
  // Depth-first nesting beyond what any report has would only measure nlohmann's recursion.
  size_t depth = 0, max_depth = 0;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '[' || data[i] == '{') max_depth = std::max(max_depth, ++depth);
    if ((data[i] == ']' || data[i] == '}') && depth > 0) --depth;
  }
  if (max_depth > 64) return -1;
  json report;
  try {
    report = json::parse(data, data + size);
  } catch (const json::exception&) {  // parse_error, and out_of_range for 1e999
    return 0;
  }
  try {
    concbench::validate_report(report);
  } catch (const concbench::ReportError&) {
    return 0;
  }
  for (bool normalize : {false, true}) {
    concbench::CompareOptions opt;
    opt.normalize = normalize;
    opt.fail_on_regression_pct = 10;
    const json cmp = concbench::compare_reports({{"a.json", report}, {"b.json", report}}, opt);
    for (auto f : {concbench::CompareFormat::text, concbench::CompareFormat::markdown,
                   concbench::CompareFormat::json})
      (void)concbench::format_comparison(cmp, f);
    (void)concbench::comparison_exit_code(cmp);
  }
  (void)concbench::format_table(report);
  return 0;
}
