#include "table.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace concbench::table {

std::string render(const std::vector<std::string>& head,
                   const std::vector<std::vector<std::string>>& rows,
                   const std::vector<Align>& align, bool markdown) {
  auto left = [&](size_t i) { return i < align.size() && align[i] == Align::left; };
  std::vector<size_t> width(head.size());
  // Markdown needs at least three dashes (and room for a colon) under each header.
  for (size_t i = 0; i < head.size(); ++i)
    width[i] = std::max<size_t>(head[i].size(), markdown ? 3 : 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& r) {
    if (markdown) out << "| ";
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      const std::string pad(width[i] - cell.size(), ' ');
      const bool last = i + 1 == width.size();
      // No trailing blanks after a left-aligned last column in plain text.
      out << (left(i) ? (last && !markdown ? cell : cell + pad) : pad + cell);
      if (i + 1 < width.size()) out << (markdown ? " | " : "  ");
    }
    out << (markdown ? " |\n" : "\n");
  };
  line(head);
  if (markdown) {
    out << "|";
    for (size_t i = 0; i < width.size(); ++i)
      out << (left(i) ? " :" : " ") << std::string(width[i] - 1, '-') << (left(i) ? " |" : ": |");
    out << "\n";
  } else {
    size_t total = 0;
    for (size_t w : width) total += w + 2;
    out << std::string(total >= 2 ? total - 2 : 0, '-') << "\n";
  }
  for (const auto& r : rows) line(r);
  return out.str();
}

std::string time_ns(double ns) {
  char buf[32];
  if (ns < 1e3)
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  else if (ns < 1e6)
    std::snprintf(buf, sizeof buf, "%.2f us", ns / 1e3);
  else if (ns < 1e9)
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", ns / 1e9);
  return buf;
}

std::string num(double v, const char* format) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace concbench::table
