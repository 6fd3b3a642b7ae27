#include "drivers/sqlite/schema_snapshot.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "core/url.hpp"

namespace dbstep::drivers::sqlite {

namespace {

struct Object {
  std::string type;  // table, index, trigger, view
  std::string name;
  std::string table;  // tbl_name: the table an index or trigger belongs to
  std::string sql;    // empty for SQLite's automatic indexes
};

std::string text_or(const SQLite::Column& c, std::string_view null_text) {
  return c.isNull() ? std::string(null_text) : c.getString();
}

bool is_punct(char c) { return c == '(' || c == ')' || c == ',' || c == ';'; }

// The columns of `table` in their order: name, declared type, NOT NULL, default, primary key
// position, generated/hidden.
void add_columns(SQLite::Database& db, const std::string& object, std::string& out) {
  SQLite::Statement q(db, fmt::format("PRAGMA table_xinfo({})", quote_identifier(object)));
  while (q.executeStep()) {
    std::string line = fmt::format("  column {}", q.getColumn(1).getString());
    const std::string type = q.getColumn(2).getString();
    if (!type.empty()) line += " " + type;
    if (q.getColumn(3).getInt() != 0) line += " not null";
    if (!q.getColumn(4).isNull()) line += " default " + q.getColumn(4).getString();
    if (int pk = q.getColumn(5).getInt(); pk != 0) line += fmt::format(" primary key {}", pk);
    switch (q.getColumn(6).getInt()) {
      case 1: line += " hidden"; break;
      case 2: line += " generated virtual"; break;
      case 3: line += " generated stored"; break;
      default: break;
    }
    out += line + "\n";
  }
}

// One line per index of `table` (automatic ones included: they carry UNIQUE and PRIMARY KEY
// constraints), sorted by name, with its key columns.
void add_indexes(SQLite::Database& db, const std::string& table, std::string& out) {
  std::vector<std::string> lines;
  SQLite::Statement list(db, fmt::format("PRAGMA index_list({})", quote_identifier(table)));
  while (list.executeStep()) {
    const std::string name = list.getColumn(1).getString();
    std::string line = fmt::format("  index {}{} origin {}{} (", name,
                                   list.getColumn(2).getInt() ? " unique" : "",
                                   list.getColumn(3).getString(),
                                   list.getColumn(4).getInt() ? " partial" : "");
    SQLite::Statement cols(db, fmt::format("PRAGMA index_xinfo({})", quote_identifier(name)));
    bool first = true;
    while (cols.executeStep()) {
      if (cols.getColumn(5).getInt() == 0) continue;  // not a key column (the rowid)
      const int cid = cols.getColumn(1).getInt();
      std::string col = cid == -2 ? "<expression>" : cid == -1 ? "rowid" : text_or(cols.getColumn(2), "?");
      if (cols.getColumn(3).getInt()) col += " desc";
      if (std::string coll = text_or(cols.getColumn(4), "BINARY"); coll != "BINARY") {
        col += " collate " + coll;
      }
      line += (first ? "" : ", ") + col;
      first = false;
    }
    lines.push_back(line + ")");
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) out += l + "\n";
}

// One line per foreign key of `table`, sorted (SQLite numbers them by position in the SQL).
void add_foreign_keys(SQLite::Database& db, const std::string& table, std::string& out) {
  struct Key {
    std::vector<std::string> from, to;
    std::string parent, on_update, on_delete, match;
  };
  std::map<int, Key> keys;
  SQLite::Statement q(db, fmt::format("PRAGMA foreign_key_list({})", quote_identifier(table)));
  while (q.executeStep()) {
    Key& k = keys[q.getColumn(0).getInt()];
    k.parent = q.getColumn(2).getString();
    k.from.push_back(q.getColumn(3).getString());
    k.to.push_back(text_or(q.getColumn(4), "<primary key>"));
    k.on_update = q.getColumn(5).getString();
    k.on_delete = q.getColumn(6).getString();
    k.match = q.getColumn(7).getString();
  }
  std::vector<std::string> lines;
  for (const auto& [id, k] : keys) {
    std::string from, to;
    for (std::size_t i = 0; i < k.from.size(); ++i) {
      from += (i ? ", " : "") + k.from[i];
      to += (i ? ", " : "") + k.to[i];
    }
    lines.push_back(fmt::format("  foreign key ({}) references {} ({}) on update {} on delete {} "
                                "match {}",
                                from, k.parent, to, k.on_update, k.on_delete, k.match));
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& l : lines) out += l + "\n";
}

bool is_own(const std::set<std::string>& own, const std::string& name) {
  // SQLite compares identifiers case-insensitively (ASCII).
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return own.count(lower) != 0;
}

std::filesystem::path scratch_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / (name + ".db");
}

}  // namespace

std::string normalise_sql(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  char quote = 0;        // the quote we are inside: ' " ` or ] for [...]
  bool pending = false;  // whitespace seen since the last character kept
  for (char c : sql) {
    if (quote) {
      out += c;
      if (c == quote) quote = 0;  // a doubled quote reopens at once: same text either way
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      pending = true;
      continue;
    }
    // One space after a comma; none after '(' or before ( ) , ; and elsewhere one space
    // where the text had any.
    if (!out.empty() && out.back() == ',') {
      out += ' ';
    } else if (pending && !out.empty() && !is_punct(c) && out.back() != '(') {
      out += ' ';
    }
    pending = false;
    out += c;
    if (c == '\'' || c == '"' || c == '`') quote = c;
    if (c == '[') quote = ']';
  }
  return out;
}

std::string schema_snapshot(SQLite::Database& db, const std::vector<std::string>& own_tables) {
  std::set<std::string> own;
  for (std::string n : own_tables) {
    std::transform(n.begin(), n.end(), n.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    own.insert(n);
  }
  try {
    std::vector<Object> objects;
    SQLite::Statement q(db,
                        "SELECT type, name, tbl_name, sql FROM sqlite_master "
                        "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' OR type <> 'table'");
    while (q.executeStep()) {
      Object o{q.getColumn(0).getString(), q.getColumn(1).getString(),
               q.getColumn(2).getString(), text_or(q.getColumn(3), "")};
      if (o.table.rfind("sqlite_", 0) == 0 || is_own(own, o.table)) continue;
      objects.push_back(std::move(o));
    }
    // By name, bytewise: the same order whatever order sqlite_master keeps them in.
    std::sort(objects.begin(), objects.end(), [](const Object& a, const Object& b) {
      return std::tie(a.table, a.type, a.name) < std::tie(b.table, b.type, b.name);
    });
    std::string out = "dialect sqlite\n";
    auto body = [&](const Object& o) {
      if (!o.sql.empty()) out += "  sql " + normalise_sql(o.sql) + "\n";
    };
    for (const auto& t : objects) {
      if (t.type != "table") continue;
      out += fmt::format("table {}\n", t.name);
      body(t);
      add_columns(db, t.name, out);
      add_indexes(db, t.name, out);
      add_foreign_keys(db, t.name, out);
      for (const auto& o : objects) {
        if (o.table != t.table || o.type == "table" || o.type == "view") continue;
        // Automatic indexes have no SQL; index_list above covers them.
        if (o.sql.empty()) continue;
        out += fmt::format("{} {} on {}\n", o.type, o.name, o.table);
        body(o);
      }
    }
    for (const auto& v : objects) {
      if (v.type != "view") continue;
      out += fmt::format("view {}\n", v.name);
      body(v);
      add_columns(db, v.name, out);
      for (const auto& o : objects) {
        if (o.table != v.name || o.type != "trigger") continue;
        out += fmt::format("trigger {} on {}\n", o.name, o.table);
        body(o);
      }
    }
    return out;
  } catch (const SQLite::Exception& e) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot read the schema of SQLite database {}: {}",
                            db.getFilename(), e.what()));
  }
}

std::string scratch_url(const std::string& name,
                        const std::vector<std::pair<std::string, std::string>>& params) {
  std::string url = "sqlite://" + scratch_path(name).string();
  char sep = '?';
  bool sync_given = false;
  for (const auto& [k, v] : params) {
    url += fmt::format("{}{}={}", sep, percent_encode(k), percent_encode(v));
    sep = '&';
    sync_given = sync_given || k == "_synchronous" || k == "_sync";
  }
  // A throwaway file: no fsync at each commit (verify commits three times per migration).
  if (!sync_given) url += fmt::format("{}_synchronous=off", sep);
  return url;
}

void remove_scratch(const std::string& name) {
  // The database and whatever sits beside it: -journal, -wal, -shm, dbstep's lock file.
  const auto path = scratch_path(name);
  const std::string prefix = path.filename().string();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path.parent_path(), ec)) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) {
      std::error_code rm;
      std::filesystem::remove(entry.path(), rm);
      if (rm && std::filesystem::exists(entry.path())) {
        throw Error(ErrorCode::kDatabase, fmt::format("cannot remove the scratch database file "
                                                      "{}: {}",
                                                      entry.path().string(), rm.message()));
      }
    }
  }
}

}  // namespace dbstep::drivers::sqlite
