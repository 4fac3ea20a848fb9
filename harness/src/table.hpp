// Plain-text and Markdown tables for the summaries bench_runner prints (run, compare). Internal
// to the harness: not part of the public headers.
#pragma once

#include <string>
#include <vector>

namespace concbench::table {

enum class Align { left, right };

// Columns padded to their widest cell, a rule under the header; with markdown, a GitHub table.
// `align` may be shorter than the header: missing columns align right.
std::string render(const std::vector<std::string>& head,
                   const std::vector<std::vector<std::string>>& rows,
                   const std::vector<Align>& align, bool markdown = false);

// "812 ns", "3.41 us", "1.20 ms", "2.05 s".
std::string time_ns(double ns);
// printf-formatted number, e.g. num(1.5, "%.2fx").
std::string num(double v, const char* format = "%.3g");

}  // namespace concbench::table
