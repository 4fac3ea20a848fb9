#include "concbench/params.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace concbench {

ParamSpec ParamSpec::integer(std::string name, std::string help, int64_t def, int64_t min,
                             int64_t max) {
  ParamSpec s;
  s.name = std::move(name);
  s.help = std::move(help);
  s.kind = Kind::integer;
  s.default_value = std::to_string(def);
  s.min = min;
  s.max = max;
  return s;
}

ParamSpec ParamSpec::choice(std::string name, std::string help, std::string def,
                            std::vector<std::string> choices) {
  ParamSpec s;
  s.name = std::move(name);
  s.help = std::move(help);
  s.kind = Kind::choice;
  s.default_value = std::move(def);
  s.choices = std::move(choices);
  return s;
}

ParamSpec ParamSpec::text(std::string name, std::string help, std::string def) {
  ParamSpec s;
  s.name = std::move(name);
  s.help = std::move(help);
  s.kind = Kind::text;
  s.default_value = std::move(def);
  return s;
}

int64_t parse_int(const std::string& text, const std::string& what) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec == std::errc::invalid_argument || p != end)
    throw UsageError(what + ": '" + text + "' is not an integer");
  if (ec == std::errc::result_out_of_range)
    throw UsageError(what + ": '" + text + "' is out of range");
  return v;
}

double parse_seconds(const std::string& text, const std::string& what) {
  // strtod accepts "inf", "nan" and hex; a duration must be a plain finite number.
  char* end = nullptr;
  errno = 0;
  double v = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v) ||
      text.find_first_of("xXnN") != std::string::npos)
    throw UsageError(what + ": '" + text + "' is not a number of seconds");
  if (v < 0) throw UsageError(what + ": '" + text + "' must not be negative");
  return v;
}

Params Params::resolve(const std::vector<ParamSpec>& specs,
                       const std::map<std::string, std::string>& given, const std::string& owner) {
  Params p;
  for (const ParamSpec& s : specs) {
    auto it = given.find(s.name);
    const std::string& value = it == given.end() ? s.default_value : it->second;
    const std::string what = "parameter " + s.name + " of " + owner;
    if (s.kind == ParamSpec::Kind::integer) {
      int64_t v = parse_int(value, what);
      if (v < s.min || v > s.max)
        throw UsageError(what + ": " + value + " is outside [" + std::to_string(s.min) + ", " +
                         std::to_string(s.max) + "]");
    } else if (s.kind == ParamSpec::Kind::text) {
      if (value.empty()) throw UsageError(what + ": empty value");
    } else {
      bool ok = false;
      for (const auto& c : s.choices) ok = ok || c == value;
      if (!ok) {
        std::string list;
        for (const auto& c : s.choices) list += (list.empty() ? "" : "|") + c;
        throw UsageError(what + ": '" + value + "' is not one of " + list);
      }
    }
    p.values_[s.name] = value;
  }
  return p;
}

int64_t Params::get_int(const std::string& name) const {
  return parse_int(get(name), "parameter " + name);
}

const std::string& Params::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw std::logic_error("undeclared parameter " + name);
  return it->second;
}

}  // namespace concbench
