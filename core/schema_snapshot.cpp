#include "core/schema_snapshot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/error.hpp"

namespace dbstep {

namespace {

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) {
      lines.push_back(text);
      break;
    }
    lines.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return lines;
}

enum class Op : std::uint8_t { kSame, kRemoved, kAdded };

struct Edit {
  Op op;
  std::size_t a;  // line index in `before` (kSame, kRemoved)
  std::size_t b;  // line index in `after` (kSame, kAdded)
};

// The edit script between a and b: common prefix and suffix first (a migration changes a few
// lines of a long snapshot), then a longest common subsequence on what is left. A middle too
// large for the table is shown as all removed, then all added: still correct, only less tidy.
std::vector<Edit> edit_script(const std::vector<std::string_view>& a,
                              const std::vector<std::string_view>& b) {
  std::size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  std::size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre &&
         a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) {
    ++suf;
  }
  std::vector<Edit> out;
  for (std::size_t i = 0; i < pre; ++i) out.push_back({Op::kSame, i, i});
  const std::size_t n = a.size() - pre - suf, m = b.size() - pre - suf;
  constexpr std::size_t kMaxCells = 16'000'000;
  if (n > 0 && m > 0 && (n + 1) * (m + 1) <= kMaxCells) {
    // lcs[i][j]: the LCS length of a[pre+i..] and b[pre+j..].
    std::vector<std::uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](std::size_t i, std::size_t j) -> std::uint32_t& { return lcs[i * (m + 1) + j]; };
    for (std::size_t i = n; i-- > 0;) {
      for (std::size_t j = m; j-- > 0;) {
        at(i, j) = a[pre + i] == b[pre + j] ? at(i + 1, j + 1) + 1
                                            : std::max(at(i + 1, j), at(i, j + 1));
      }
    }
    std::size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[pre + i] == b[pre + j]) {
        out.push_back({Op::kSame, pre + i++, pre + j++});
      } else if (i < n && (j == m || at(i + 1, j) >= at(i, j + 1))) {
        out.push_back({Op::kRemoved, pre + i++, pre + j});  // removals first, as diff -u
      } else {
        out.push_back({Op::kAdded, pre + i, pre + j++});
      }
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) out.push_back({Op::kRemoved, pre + i, pre});
    for (std::size_t j = 0; j < m; ++j) out.push_back({Op::kAdded, pre + n, pre + j});
  }
  for (std::size_t k = 0; k < suf; ++k) {
    out.push_back({Op::kSame, a.size() - suf + k, b.size() - suf + k});
  }
  return out;
}

}  // namespace

std::string schema_dump(Driver& driver) {
  std::string snapshot = driver.schema_snapshot();
  std::string out;
  out.reserve(kSchemaDumpHeader.size() + 1 + snapshot.size());
  out.append(kSchemaDumpHeader).append("\n").append(snapshot);
  return out;
}

std::string snapshot_from_dump(std::string_view text, std::string_view file_name) {
  std::string_view first = text.substr(0, text.find('\n'));
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  if (first != kSchemaDumpHeader) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} is not a dbstep schema dump (its first line is not \"{}\"); make "
                            "one with `dbstep schema dump > FILE`",
                            file_name, kSchemaDumpHeader));
  }
  if (first.size() == text.size()) return {};
  std::string body(text.substr(text.find('\n') + 1));
  // A dump that went through an editor or git with CRLF line endings is still the same dump.
  body.erase(std::remove(body.begin(), body.end(), '\r'), body.end());
  return body;
}

std::string diff_snapshots(std::string_view before, std::string_view after,
                           std::string_view before_label, std::string_view after_label,
                           int context) {
  if (before == after) return {};
  const auto a = split_lines(before);
  const auto b = split_lines(after);
  const auto edits = edit_script(a, b);
  const std::size_t ctx = context < 0 ? 0 : static_cast<std::size_t>(context);
  std::string out = fmt::format("--- {}\n+++ {}\n", before_label, after_label);
  std::size_t k = 0;
  while (k < edits.size()) {
    // The next change, and the hunk around it: changes closer than 2 * context share one.
    std::size_t first_change = k;
    while (first_change < edits.size() && edits[first_change].op == Op::kSame) ++first_change;
    if (first_change == edits.size()) break;
    std::size_t start = first_change >= ctx ? first_change - ctx : 0;
    start = std::max(start, k);
    std::size_t end = first_change;  // one past the hunk's last edit
    std::size_t same_run = 0;
    for (std::size_t e = first_change; e < edits.size(); ++e) {
      if (edits[e].op == Op::kSame) {
        if (++same_run > 2 * ctx) break;
      } else {
        same_run = 0;
        end = e + 1;
      }
    }
    end = std::min(edits.size(), end + ctx);
    std::size_t a_start = edits[start].a, b_start = edits[start].b;
    std::size_t a_count = 0, b_count = 0;
    std::string body;
    for (std::size_t e = start; e < end; ++e) {
      const Edit& ed = edits[e];
      switch (ed.op) {
        case Op::kSame:
          body += fmt::format(" {}\n", a[ed.a]);
          ++a_count;
          ++b_count;
          break;
        case Op::kRemoved:
          body += fmt::format("-{}\n", a[ed.a]);
          ++a_count;
          break;
        case Op::kAdded:
          body += fmt::format("+{}\n", b[ed.b]);
          ++b_count;
          break;
      }
    }
    // Unified diff numbers lines from 1; an empty side starts at the line before.
    out += fmt::format("@@ -{},{} +{},{} @@\n", a_count ? a_start + 1 : a_start, a_count,
                       b_count ? b_start + 1 : b_start, b_count);
    out += body;
    k = end;
  }
  return out;
}

SchemaDrift compare_with_dump(Driver& driver, std::string_view dump_text,
                              std::string_view file_name) {
  const std::string saved = snapshot_from_dump(dump_text, file_name);
  const std::string live = driver.schema_snapshot();
  return {diff_snapshots(saved, live, fmt::format("{} (saved)", file_name),
                         fmt::format("{} (live)", driver.describe()))};
}

}  // namespace dbstep
