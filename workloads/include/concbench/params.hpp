// Named parameters (`--param key=value`) for workloads and models: declared with a type and a
// range, so bad values are refused before anything runs, with a message that names them.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace concbench {

// Thrown for any input the user can fix: bad names, values, ranges. Front ends turn it into one
// line on stderr and exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ParamSpec {
  enum class Kind { integer, choice, text };
  std::string name;
  std::string help;
  Kind kind = Kind::integer;
  std::string default_value;
  int64_t min = 0;                   // integer only, inclusive
  int64_t max = INT64_MAX;           // integer only, inclusive
  std::vector<std::string> choices;  // choice only

  static ParamSpec integer(std::string name, std::string help, int64_t def, int64_t min,
                           int64_t max);
  static ParamSpec choice(std::string name, std::string help, std::string def,
                          std::vector<std::string> choices);
  // Any non-empty text; its owner validates it (e.g. a placement such as "list:0,2").
  static ParamSpec text(std::string name, std::string help, std::string def);
};

// Parses a whole string as a base-10 integer; throws UsageError naming `what` otherwise.
int64_t parse_int(const std::string& text, const std::string& what);
// Parses a whole string as a finite, non-negative number of seconds.
double parse_seconds(const std::string& text, const std::string& what);

// Resolved values for one workload or model: every declared parameter has a value.
class Params {
 public:
  Params() = default;
  // Defaults from `specs`, overridden by `given` (only keys that `specs` declares are taken).
  // Throws UsageError for a value that does not parse or is out of range.
  static Params resolve(const std::vector<ParamSpec>& specs,
                        const std::map<std::string, std::string>& given, const std::string& owner);

  int64_t get_int(const std::string& name) const;
  const std::string& get(const std::string& name) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

}  // namespace concbench
