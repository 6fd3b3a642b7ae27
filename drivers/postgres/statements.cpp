#include "drivers/postgres/statements.hpp"

#include <fmt/format.h>
#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <string_view>

#include "core/error.hpp"
#include "core/sql_text.hpp"

namespace dbstep::drivers::pg {

namespace {

constexpr std::string_view kNoTransactionDirective = "dbstep:no-transaction";

Statement unparsed(std::size_t offset, std::size_t length) {
  Statement st;
  st.offset = offset;
  st.length = length;
  return st;
}

bool has_option(PgQuery__Node* const* items, std::size_t n, std::string_view name) {
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && items[i]->def_elem->defname &&
        name == items[i]->def_elem->defname) {
      return true;
    }
  }
  return false;
}

// The statements PostgreSQL 15 runs only outside a transaction block
// (PreventInTransactionBlock), by parse-tree node.
void classify(const PgQuery__Node& node, Statement& st) {
  switch (node.node_case) {
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT: {
      const auto& t = *node.transaction_stmt;
      const bool plain = t.n_options == 0 && !t.chain;
      if ((t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN ||
           t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START) &&
          plain) {
        st.tx = TxControl::kBegin;
      } else if (t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT && plain) {
        st.tx = TxControl::kCommit;
      } else if (t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT ||
                 t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE ||
                 t.kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO) {
        st.tx = TxControl::kNone;  // fine inside our transaction
      } else {
        st.tx = TxControl::kOther;
      }
      break;
    }
    case PG_QUERY__NODE__NODE_INDEX_STMT:
      if (node.index_stmt->concurrent) st.no_transaction = "CREATE INDEX CONCURRENTLY";
      break;
    case PG_QUERY__NODE__NODE_DROP_STMT:
      if (node.drop_stmt->concurrent) st.no_transaction = "DROP INDEX CONCURRENTLY";
      break;
    case PG_QUERY__NODE__NODE_REINDEX_STMT: {
      const auto& r = *node.reindex_stmt;
      if (has_option(r.params, r.n_params, "concurrently") ||
          r.kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_SYSTEM ||
          r.kind == PG_QUERY__REINDEX_OBJECT_TYPE__REINDEX_OBJECT_DATABASE) {
        st.no_transaction = "REINDEX";
      }
      break;
    }
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
      if (node.vacuum_stmt->is_vacuumcmd) st.no_transaction = "VACUUM";
      break;
    case PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT:
      st.no_transaction = "ALTER SYSTEM";
      break;
    case PG_QUERY__NODE__NODE_CREATEDB_STMT:
      st.no_transaction = "CREATE DATABASE";
      break;
    case PG_QUERY__NODE__NODE_DROPDB_STMT:
      st.no_transaction = "DROP DATABASE";
      break;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_SPACE_STMT:
      st.no_transaction = "CREATE TABLESPACE";
      break;
    case PG_QUERY__NODE__NODE_DROP_TABLE_SPACE_STMT:
      st.no_transaction = "DROP TABLESPACE";
      break;
    case PG_QUERY__NODE__NODE_CREATE_SUBSCRIPTION_STMT:
      st.no_transaction = "CREATE SUBSCRIPTION";
      break;
    case PG_QUERY__NODE__NODE_DROP_SUBSCRIPTION_STMT:
      st.no_transaction = "DROP SUBSCRIPTION";
      break;
    case PG_QUERY__NODE__NODE_ALTER_SUBSCRIPTION_STMT:
      if (node.alter_subscription_stmt->kind ==
          PG_QUERY__ALTER_SUBSCRIPTION_TYPE__ALTER_SUBSCRIPTION_REFRESH) {
        st.no_transaction = "ALTER SUBSCRIPTION ... REFRESH PUBLICATION";
      }
      break;
    case PG_QUERY__NODE__NODE_ALTER_DATABASE_STMT: {
      const auto& a = *node.alter_database_stmt;
      if (has_option(a.options, a.n_options, "tablespace")) {
        st.no_transaction = "ALTER DATABASE ... SET TABLESPACE";
      }
      break;
    }
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
      if (!node.cluster_stmt->relation) st.no_transaction = "CLUSTER";
      break;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      if (node.discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL) {
        st.no_transaction = "DISCARD ALL";
      }
      break;
    case PG_QUERY__NODE__NODE_COPY_STMT:
      st.copy = true;
      break;
    default:
      break;
  }
}

// Whether `statement` could be one that classify() looks for: a cheap necessary condition, so
// that only those few statements pay for libpg_query's parse tree (serialising the tree as
// protobuf and reading it back costs ten times the parse itself). Transaction control starts
// with its keyword; every other statement classify() cares about spells one of these keywords
// somewhere (keywords are plain letters in any case: no escape or comment can hide one). A
// false alarm costs only the tree.
bool may_need_tree(std::string_view statement) {
  static constexpr std::array<std::string_view, 9> kTransactionControl = {
      "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"};
  // The first word after blank text as PostgreSQL reads it ("--" comments end at "\r" too).
  std::string first;
  for (std::size_t i = skip_blank(statement, 0, SqlDialect::kPostgres);
       i < statement.size() && std::isalpha(static_cast<unsigned char>(statement[i])); ++i) {
    first.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(statement[i]))));
  }
  for (auto k : kTransactionControl) {
    if (first == k) return true;
  }
  static constexpr std::array<std::string_view, 10> kKeywords = {
      "concurrently", "reindex",      "vacuum",  "system",  "database",
      "tablespace",   "subscription", "cluster", "discard", "copy"};
  for (auto k : kKeywords) {
    if (contains_ascii_ci(statement, k)) return true;
  }
  return false;
}

// Classifies one statement by its parse tree.
void classify(const std::string& statement, Statement& st) {
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(statement.c_str());
  struct FreeResult {
    PgQueryProtobufParseResult& r;
    ~FreeResult() { pg_query_free_protobuf_parse_result(r); }
  } free_result{r};
  if (r.error) return;
  struct FreeTree {
    void operator()(PgQuery__ParseResult* t) const {
      pg_query__parse_result__free_unpacked(t, nullptr);
    }
  };
  std::unique_ptr<PgQuery__ParseResult, FreeTree> tree(pg_query__parse_result__unpack(
      nullptr, r.parse_tree.len, reinterpret_cast<const std::uint8_t*>(r.parse_tree.data)));
  if (tree && tree->n_stmts == 1 && tree->stmts[0]->stmt) classify(*tree->stmts[0]->stmt, st);
}

// Splits `sql` (one statement or many) with PostgreSQL's parser and classifies each statement.
// False when libpg_query cannot parse it, e.g. a syntax error, or syntax newer than PostgreSQL
// 15: the server is the judge of those.
bool parse_statements(const std::string& sql, std::size_t base, std::vector<Statement>& out) {
  PgQuerySplitResult r = pg_query_split_with_parser(sql.c_str());
  struct FreeResult {
    PgQuerySplitResult& r;
    ~FreeResult() { pg_query_free_split_result(r); }
  } free_result{r};
  if (r.error) return false;
  for (int i = 0; i < r.n_stmts; ++i) {
    auto loc = static_cast<std::size_t>(std::max(r.stmts[i]->stmt_location, 0));
    auto len = static_cast<std::size_t>(std::max(r.stmts[i]->stmt_len, 0));
    if (loc > sql.size()) loc = sql.size();
    if (len == 0 || loc + len > sql.size()) len = sql.size() - loc;
    Statement st = unparsed(base + loc, len);
    st.parsed = true;
    std::string text = sql.substr(loc, len);
    if (may_need_tree(text)) classify(text, st);
    out.push_back(std::move(st));
  }
  return true;
}


// The statements libpg_query finds in `body` (the file after its byte-order mark, which starts
// at `base` in the file), in file order, possibly with gaps between them.
std::vector<Statement> split(const std::string& body, std::size_t base) {
  std::vector<Statement> all;
  if (parse_statements(body, base, all)) return all;
  // A syntax error, or syntax newer than PostgreSQL 15. Split with the lexer, which knows
  // strings, $$ bodies and comments but no grammar, and classify each statement the parser
  // understands. The lexer leaves out statements without a keyword: the gaps hold them.
  all.clear();
  PgQuerySplitResult s = pg_query_split_with_scanner(body.c_str());
  struct FreeResult {
    PgQuerySplitResult& r;
    ~FreeResult() { pg_query_free_split_result(r); }
  } free_result{s};
  if (s.error) {
    all.push_back(unparsed(base, body.size()));
    return all;
  }
  for (int i = 0; i < s.n_stmts; ++i) {
    auto loc = static_cast<std::size_t>(std::max(s.stmts[i]->stmt_location, 0));
    auto len = static_cast<std::size_t>(std::max(s.stmts[i]->stmt_len, 0));
    if (loc > body.size()) loc = body.size();
    if (len == 0 || loc + len > body.size()) len = body.size() - loc;
    std::vector<Statement> one;
    if (parse_statements(body.substr(loc, len), base + loc, one) && one.size() == 1) {
      one[0].length = len;
      one[0].offset = base + loc;
      all.push_back(std::move(one[0]));
    } else {
      all.push_back(unparsed(base + loc, len));
    }
  }
  return all;
}

// Statement accounting: the statements the splitter found, blank ones left out, and every gap
// between them that is not blank turned into a statement of its own, for the server to judge.
std::vector<Statement> account(std::string_view text, std::vector<Statement> found) {
  std::sort(found.begin(), found.end(),
            [](const Statement& a, const Statement& b) { return a.offset < b.offset; });
  std::vector<Statement> out;
  out.reserve(found.size());
  std::size_t covered = bom_length(text);
  auto fill_gap = [&](std::size_t to) {
    std::string_view gap = text.substr(covered, to - covered);
    if (!is_blank(gap, SqlDialect::kPostgres)) {
      const std::size_t start = covered + skip_separators(gap, 0, SqlDialect::kPostgres);
      out.push_back(unparsed(start, to - start));
    }
  };
  for (Statement& st : found) {
    if (st.offset < covered) {
      // Overlapping spans would send text twice: let the server judge the rest as one.
      if (st.offset + st.length <= covered) continue;
      st = unparsed(covered, st.offset + st.length - covered);
    }
    fill_gap(st.offset);
    covered = st.offset + st.length;
    if (!is_blank(text.substr(st.offset, st.length), SqlDialect::kPostgres)) {
      out.push_back(std::move(st));
    }
  }
  fill_gap(text.size());
  return out;
}

}  // namespace

Script analyze(const Step& step) {
  const std::string& text = step.sql;
  if (auto nul = text.find('\0'); nul != std::string::npos) throw nul_byte_error(step, nul);
  const std::size_t bom = bom_length(text);
  Script script;
  script.statements = account(text, split(text.substr(bom), bom));

  bool no_tx = has_directive(text, kNoTransactionDirective);
  if (no_tx) script.why_outside = "it says -- dbstep:no-transaction";
  std::size_t controls = 0;
  for (const auto& st : script.statements) {
    if (!st.parsed || st.copy) script.pipelinable = false;
    if (!st.no_transaction.empty() && !no_tx) {
      no_tx = true;
      script.why_outside = "it holds " + st.no_transaction;
    }
    if (st.tx != TxControl::kNone) ++controls;
  }
  auto& v = script.statements;
  if (!no_tx && controls == 2 && v.size() >= 2 && v.front().tx == TxControl::kBegin &&
      v.back().tx == TxControl::kCommit) {
    // golang-migrate users often wrap a file in BEGIN; ... COMMIT; themselves. dbstep's own
    // transaction does the same job, atomically with the version update: drop the wrapper.
    script.absorbed = {v.front().span(), v.back().span()};
    v.erase(v.end() - 1);
    v.erase(v.begin());
  } else if (!no_tx && controls == 1 && v.front().tx == TxControl::kBegin) {
    // BEGIN first and never a COMMIT: the file's transaction would be rolled back at its end
    // whatever it did. Refused before anything runs, so the database stays as it is.
    throw begin_without_commit_error(step, v.front().offset, SqlDialect::kPostgres);
  } else if (controls > 0) {
    // Any other transaction control (several transactions, ROLLBACK, PREPARE TRANSACTION...)
    // only makes sense as written: run the file outside a transaction.
    if (!no_tx) script.why_outside = "it controls transactions itself (BEGIN, COMMIT ...)";
    no_tx = true;
  }
  script.outside_transaction = no_tx;

  // By construction nothing is unaccounted for; checked all the same, so that a future change
  // to the split fails a migration rather than skipping part of it.
  const std::vector<TextSpan> spans = accounted_spans(script);
  if (auto at = first_unaccounted(text, spans, SqlDialect::kPostgres)) {
    throw unaccounted_text_error(step, *at);
  }
  return script;
}

std::vector<TextSpan> accounted_spans(const Script& script) {
  std::vector<TextSpan> spans;
  spans.reserve(script.statements.size() + script.absorbed.size());
  for (const auto& st : script.statements) spans.push_back(st.span());
  spans.insert(spans.end(), script.absorbed.begin(), script.absorbed.end());
  std::sort(spans.begin(), spans.end(),
            [](const TextSpan& a, const TextSpan& b) { return a.offset < b.offset; });
  return spans;
}

StepPreview preview_of(const Step& step) {
  const Script script = analyze(step);
  const std::string& text = step.sql;
  StepPreview out;
  out.in_transaction = !script.outside_transaction;
  if (script.outside_transaction) out.why_outside = script.why_outside;
  if (!script.absorbed.empty()) {
    out.notes.emplace_back("the file's own BEGIN and COMMIT are not sent: dbstep's transaction "
                           "stands in for them");
  }
  for (const auto& st : script.statements) {
    // Shown without the blank text around it; the line is that of its first character.
    const std::size_t start = skip_blank(text, st.offset, SqlDialect::kPostgres);
    std::size_t end = st.offset + st.length;
    while (end > start && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
    const TextPosition pos = position_at(text, start);
    out.statements.push_back(StatementPreview{pos.line, pos.column, text.substr(start, end - start)});
  }
  return out;
}

}  // namespace dbstep::drivers::pg
