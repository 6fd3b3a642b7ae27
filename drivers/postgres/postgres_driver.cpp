#include "drivers/postgres/postgres_driver.hpp"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/sql_text.hpp"
#include "drivers/postgres/history_table.hpp"
#include "drivers/postgres/libpq.hpp"
#include "drivers/postgres/pooler_check.hpp"
#include "drivers/postgres/statements.hpp"

namespace dbstep::drivers {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using pg::analyze;
using pg::Script;
using pg::Statement;

constexpr std::string_view kDefaultTable = "schema_migrations";
constexpr std::string_view kDefaultLockTable = "schema_lock";

// ---------------------------------------------------------------------------------------------
// golang-migrate's lock key.

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

std::uint32_t crc32_ieee(std::string_view data) {
  static const auto table = make_crc_table();
  std::uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// ---------------------------------------------------------------------------------------------
// Small text helpers.

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// libpq's messages span lines ("...failed: X\n\tIs the server running..."): one line for ours.
std::string one_line(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : trim(s)) {
    if (c == '\n' || c == '\r' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string format_duration(milliseconds d) {
  if (d.count() % 1000 == 0) return fmt::format("{} s", d.count() / 1000);
  if (d.count() > 1000) return fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000.0);
  return fmt::format("{} ms", d.count());
}

// Go's strconv.ParseBool, with its error text, as golang-migrate reports it.
bool go_parse_bool(std::string_view key, std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "true" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "FALSE" || v == "false" || v == "False")
    return false;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unable to parse option {}: strconv.ParseBool: parsing \"{}\": invalid "
                          "syntax",
                          key, v));
}

std::int64_t parse_millis(std::string_view key, std::string_view v) {
  std::int64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || out < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("unable to parse option {}: \"{}\" is not a whole number of "
                            "milliseconds (e.g. {}=15000)",
                            key, v, key));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// libpq, wrapped.

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { pq().PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept { pq().PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct CancelDeleter {
  void operator()(PGcancel* c) const noexcept { pq().PQfreeCancel(c); }
};
using CancelPtr = std::unique_ptr<PGcancel, CancelDeleter>;

// A failed command, with the server's fields (empty when the failure was on the client side,
// e.g. a lost connection).
struct SqlFailure {
  std::string sqlstate;
  std::string message;  // primary message
  std::string detail;
  std::string hint;
  std::string context;
  int position = 0;     // 1-based character in the query sent, 0 when none
  std::string verbose;  // the whole report, as psql would print it
};

std::string field(const PGresult* r, int code) {
  const char* v = r ? pq().PQresultErrorField(r, code) : nullptr;
  return v ? std::string(v) : std::string();
}

SqlFailure failure_of(PGconn* conn, const PGresult* r) {
  SqlFailure f;
  if (r && pq().PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) {
    f.sqlstate = field(r, PG_DIAG_SQLSTATE);
    f.message = field(r, PG_DIAG_MESSAGE_PRIMARY);
    f.detail = field(r, PG_DIAG_MESSAGE_DETAIL);
    f.hint = field(r, PG_DIAG_MESSAGE_HINT);
    f.context = field(r, PG_DIAG_CONTEXT);
    std::string pos = field(r, PG_DIAG_STATEMENT_POSITION);
    if (!pos.empty()) f.position = std::atoi(pos.c_str());
    f.verbose = trim(pq().PQresultErrorMessage(r));
  } else {
    f.message =
        one_line(r && *pq().PQresultErrorMessage(r) ? pq().PQresultErrorMessage(r) : pq().PQerrorMessage(conn));
    if (f.message.empty()) f.message = "unknown error from libpq";
    f.verbose = f.message;
  }
  return f;
}

// Sends `sql` (one or more statements) with the simple-query protocol. Returns the last result,
// or the failure. COPY ... FROM STDIN is refused and COPY ... TO STDOUT drained, so the
// connection is always ready for the next command afterwards.
std::pair<ResultPtr, std::optional<SqlFailure>> run(PGconn* conn, const std::string& sql) {
  ResultPtr r(pq().PQexec(conn, sql.c_str()));
  ExecStatusType st = r ? pq().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
    if (st == PGRES_COPY_IN) {
      pq().PQputCopyEnd(conn, "dbstep cannot feed COPY ... FROM STDIN; use INSERT or COPY FROM a file");
    } else {
      char* buf = nullptr;
      while (pq().PQgetCopyData(conn, &buf, 0) > 0) pq().PQfreemem(buf);
    }
    ResultPtr last;
    std::optional<SqlFailure> failed;
    while (PGresult* next = pq().PQgetResult(conn)) {
      ResultPtr n(next);
      if (pq().PQresultStatus(next) == PGRES_FATAL_ERROR && !failed) failed = failure_of(conn, next);
      last = std::move(n);
    }
    return {std::move(last), std::move(failed)};
  }
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
    return {std::move(r), std::nullopt};
  }
  return {nullptr, failure_of(conn, r.get())};
}

std::pair<ResultPtr, std::optional<SqlFailure>> run_params(PGconn* conn, const std::string& sql,
                                                           const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  ResultPtr r(pq().PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0));
  ExecStatusType st = r ? pq().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return {std::move(r), std::nullopt};
  return {nullptr, failure_of(conn, r.get())};
}

// Queries sent back to back, their results read afterwards: libpq's pipeline mode (libpq 14+),
// one extended-protocol query per statement, so a failure still names its statement while the
// lot costs one round trip. After a failure the server skips the rest up to the sync.
// Not pipelined, the queries run one at a time (for what pipeline mode cannot carry: COPY, or
// text that libpg_query could not split into single statements). Either way nothing after the
// first failure runs.
class Pipeline {
 public:
  struct Failure {
    std::size_t index;  // of the query, in the order add() received them
    SqlFailure why;
  };

  Pipeline(PGconn* conn, bool pipelined) : conn_(conn), pipelined_(pipelined) {
    if (pipelined_ && (!pq().PQenterPipelineMode(conn_) || pq().PQsetnonblocking(conn_, 1) != 0)) {
      fail_now(failure_of(conn_, nullptr));
    }
  }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() {
    if (pipelined_) finish();  // leaves the connection as it was, whatever happened
  }

  // Sends `sql`, one statement.
  void add(const std::string& sql) {
    const std::size_t index = count_++;
    if (failure_) return;
    if (!pipelined_) {
      if (auto [r, failed] = run(conn_, sql); failed) {
        failure_ = Failure{index, *failed};
      } else if (pq().PQtransactionStatus(conn_) == PQTRANS_IDLE) {
        committed_ = true;
      }
      return;
    }
    if (!pq().PQsendQueryParams(conn_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0)) {
      fail_now(failure_of(conn_, nullptr), index);
      return;
    }
    ++sent_;
  }

  // Not pipelined: whether a query succeeded with no transaction left open after it, i.e. the
  // queries so far left a mark that a rollback cannot take back.
  bool committed() const { return committed_; }

  // How many queries add() received.
  std::size_t size() const { return count_; }

  // Ends the pipeline and reads every result: the first failure, if any.
  std::optional<Failure> finish() {
    if (!pipelined_ || finished_) return failure_;
    finished_ = true;
    if (!broken_ && (!pq().PQpipelineSync(conn_) || !flush())) fail_now(failure_of(conn_, nullptr));
    pq().PQsetnonblocking(conn_, 0);
    if (!broken_) {
      for (std::size_t i = 0; i < sent_; ++i) {
        while (PGresult* next = pq().PQgetResult(conn_)) {
          ResultPtr r(next);
          if (pq().PQresultStatus(next) == PGRES_FATAL_ERROR && !failure_) {
            failure_ = Failure{i, failure_of(conn_, next)};
          }
        }
      }
      ResultPtr sync(pq().PQgetResult(conn_));  // PGRES_PIPELINE_SYNC
    }
    if (!pq().PQexitPipelineMode(conn_) && !failure_) {
      failure_ = Failure{sent_, failure_of(conn_, nullptr)};
    }
    return failure_;
  }

 private:
  void fail_now(SqlFailure why, std::optional<std::size_t> index = std::nullopt) {
    broken_ = true;
    if (!failure_) failure_ = Failure{index.value_or(sent_), std::move(why)};
  }

  // Writes out what libpq holds, reading meanwhile what the server answers: the server stops
  // reading queries when nobody reads its results, so waiting only to write could deadlock.
  bool flush() {
    for (;;) {
      int left = pq().PQflush(conn_);
      if (left == 0) return true;
      if (left < 0) return false;
      pollfd p{pq().PQsocket(conn_), POLLIN | POLLOUT, 0};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) return false;
      if ((p.revents & POLLIN) && !pq().PQconsumeInput(conn_)) return false;
    }
  }

  PGconn* conn_;
  bool pipelined_;
  bool finished_ = false;
  bool broken_ = false;  // libpq refused a send: nothing more is read
  bool committed_ = false;
  std::size_t count_ = 0;  // queries added
  std::size_t sent_ = 0;   // queries libpq took
  std::optional<Failure> failure_;
};

std::string value_at(const PGresult* r, int row, int col) {
  if (!r || row >= pq().PQntuples(r) || pq().PQgetisnull(r, row, col)) return {};
  return pq().PQgetvalue(r, row, col);
}

// ---------------------------------------------------------------------------------------------
// The connection: URL -> libpq keywords.

// libpq's connection keywords (host, port, sslmode, options ...), from libpq itself.
const std::set<std::string>& libpq_keywords() {
  static const std::set<std::string> keywords = [] {
    std::set<std::string> out;
    if (PQconninfoOption* opts = pq().PQconndefaults()) {
      for (PQconninfoOption* o = opts; o->keyword; ++o) out.insert(o->keyword);
      pq().PQconninfoFree(opts);
    }
    return out;
  }();
  return keywords;
}

// A server setting as one "-c name=value" of libpq's `options` (spaces and '\' escaped).
std::string server_option(std::string_view name, std::string_view value) {
  std::string out = "-c ";
  for (char c : fmt::format("{}={}", name, value)) {
    if (c == ' ' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

struct ConnectSpec {
  std::vector<std::string> keywords;
  std::vector<std::string> values;
  std::vector<std::string> secrets;  // passwords to hide in every message
  std::string url_path;              // golang-migrate's purl.Path ("/db"), URL form only
};

ConnectSpec connect_spec(const Url& url) {
  ConnectSpec spec;
  const std::string& text = url.text();
  std::string_view rest = std::string_view(text).substr(url.scheme().size() + 1);
  std::string_view head = rest.substr(0, rest.find('?'));
  bool uri_form = head.substr(0, 2) == "//";

  // libpq understands postgres:// and postgresql:// (and nothing else) as URLs; "key=value"
  // strings come after "postgres:" and go to libpq as they are.
  std::string base;
  if (uri_form) {
    base = "postgresql:" + std::string(head);
    std::string_view after = head.substr(2);
    std::string_view authority = after.substr(0, after.find('/'));
    if (after.find('/') != std::string_view::npos) {
      spec.url_path = percent_decode(after.substr(after.find('/')));
    }
    auto at = authority.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view userinfo = authority.substr(0, at);
      auto colon = userinfo.find(':');
      if (colon != std::string_view::npos) {
        std::string_view pw = userinfo.substr(colon + 1);
        spec.secrets.emplace_back(pw);
        spec.secrets.push_back(percent_decode(pw));
      }
    }
  } else {
    base = std::string(head);
    static const std::regex pw(R"(password\s*=\s*('((?:[^'\\]|\\.)*)'|[^\s]+))", std::regex::icase);
    for (std::sregex_iterator it(base.begin(), base.end(), pw), end; it != end; ++it) {
      spec.secrets.push_back((*it)[2].matched ? (*it)[2].str() : (*it)[1].str());
    }
  }
  spec.keywords.push_back("dbname");
  spec.values.push_back(base.empty() ? std::string("postgresql://") : base);

  std::string options;
  bool has_app_name = false, has_encoding = false;
  for (const auto& [key, value] : url.backend_params()) {
    if (key == "password") spec.secrets.push_back(value);
    if (key == "application_name" || key == "fallback_application_name") has_app_name = true;
    if (key == "client_encoding") has_encoding = true;
    if (key == "options") {
      options += (options.empty() ? "" : " ") + value;
    } else if (libpq_keywords().count(key)) {
      spec.keywords.push_back(key);
      spec.values.push_back(value);
    } else if (key == "binary_parameters" || key == "disable_prepared_binary_result") {
      // lib/pq's client-side switches: nothing to do for libpq.
    } else {
      // lib/pq sends unknown parameters (search_path, statement_timeout ...) to the server as
      // settings; libpq would reject them, so they travel in `options`.
      options += (options.empty() ? "" : " ") + server_option(key, value);
    }
  }
  if (!options.empty()) {
    spec.keywords.push_back("options");
    spec.values.push_back(options);
  }
  if (!has_app_name) {
    spec.keywords.push_back("fallback_application_name");
    spec.values.push_back("dbstep");
  }
  if (!has_encoding) {
    // PostgreSQL reports error positions in characters of the client encoding; files are UTF-8.
    spec.keywords.push_back("client_encoding");
    spec.values.push_back("UTF8");
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// The driver.

enum class LockStrategy { kAdvisory, kTable };

// Whether a failed history query says the table is not dbstep's shape.
bool is_wrong_shape(std::string_view sqlstate);

struct Config {
  std::string table = std::string(kDefaultTable);
  std::optional<std::string> schema;  // from x-migrations-table-quoted
  // The history table (x-history-table, default "<table>_history"), and its schema when
  // x-migrations-table-quoted names one (default: the version table's).
  std::string history_table;
  std::optional<std::string> history_schema;
  std::int64_t statement_timeout_ms = 0;
  std::optional<milliseconds> lock_timeout;
  LockStrategy lock_strategy = LockStrategy::kAdvisory;
  std::string lock_table = std::string(kDefaultLockTable);
};

// A table name under x-migrations-table-quoted: "table" or "schema"."table" (golang-migrate's
// rules and messages; `key` names the parameter).
std::pair<std::optional<std::string>, std::string> parse_quoted_table(std::string_view key,
                                                                      const std::string& table) {
  if (table.size() < 2 || table.front() != '"' || table.back() != '"') {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{} must be quoted (for instance "
                            "'\"migrate\".\"schema_migrations\"') when "
                            "x-migrations-table-quoted is enabled, current value is: {}",
                            key, table));
  }
  static const std::regex part("\"(.*?)\"");
  std::vector<std::string> parts;
  for (std::sregex_iterator it(table.begin(), table.end(), part), end; it != end; ++it) {
    parts.push_back((*it)[1].str());
  }
  if (parts.size() > 2) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("\"{}\" MigrationsTable contains too many dot characters", table));
  }
  std::optional<std::string> schema;
  if (parts.size() == 2) schema = parts[0];
  return {schema, parts.back()};
}

Config parse_config(const Url& url) {
  Config c;
  std::string table = url.param("x-migrations-table").value_or("");
  std::string history = url.param("x-history-table").value_or("");
  bool quoted = false;
  if (auto q = url.param("x-migrations-table-quoted"); q && !q->empty()) {
    quoted = go_parse_bool("x-migrations-table-quoted", *q);
  }
  if (quoted) {
    if (table.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "x-migrations-table-quoted is enabled but x-migrations-table is missing (for "
                  "instance x-migrations-table=\"migrate\".\"schema_migrations\")");
    }
    std::tie(c.schema, c.table) = parse_quoted_table("x-migrations-table", table);
  } else if (!table.empty()) {
    c.table = table;
  }
  if (c.table.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "x-migrations-table names an empty table name");
  }
  // The history table follows the version table: the same schema and the same quoting rules.
  c.history_schema = c.schema;
  c.history_table = default_history_table(c.table);
  if (quoted && !history.empty()) {
    auto [schema, name] = parse_quoted_table("x-history-table", history);
    if (schema) c.history_schema = schema;
    c.history_table = name;
  } else if (!history.empty()) {
    c.history_table = history;
  }
  if (c.history_table.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "x-history-table names an empty table name");
  }
  if (auto v = url.param("x-statement-timeout"); v && !v->empty()) {
    c.statement_timeout_ms = parse_millis("x-statement-timeout", *v);
  }
  if (auto v = url.param("x-lock-timeout"); v && !v->empty()) {
    c.lock_timeout = milliseconds(parse_millis("x-lock-timeout", *v));
  }
  if (auto v = url.param("x-multi-statement"); v && !v->empty()) {
    go_parse_bool("x-multi-statement", *v);  // validated as golang-migrate does, then ignored
  }
  if (auto v = url.param("x-lock-strategy"); v && !v->empty()) {
    if (*v == "advisory") {
      c.lock_strategy = LockStrategy::kAdvisory;
    } else if (*v == "table") {
      c.lock_strategy = LockStrategy::kTable;
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  fmt::format("unknown lock strategy \"{}\" in x-lock-strategy (use advisory or "
                              "table)",
                              *v));
    }
  }
  if (auto v = url.param("x-lock-table"); v && !v->empty()) c.lock_table = *v;
  return c;
}

class PostgresDriver final : public Driver {
 public:
  PostgresDriver(const Url& url, Config config);
  ~PostgresDriver() override;
  PostgresDriver(const PostgresDriver&) = delete;
  PostgresDriver& operator=(const PostgresDriver&) = delete;

  using Driver::lock;
  void lock(milliseconds timeout, const std::atomic<bool>* stop) override;
  void unlock() override;
  DbState state() override;
  bool apply(const Step& step, const DbState& expected) override;
  bool apply_batch(const DbState& expected, const StepFeed& next) override;
  void set_state(const DbState& state) override;
  std::optional<std::vector<HistoryRow>> history() override;
  std::optional<std::string> stored_down(Version version) override;
  void record_state(const DbState& state, const std::vector<HistoryRow>& rows) override;
  void drop() override;
  std::string describe() const override { return described_; }
  std::optional<StepPreview> preview(const Step& step) override { return pg::preview_of(step); }
  void interrupt() noexcept override;

 private:
  // Hides every password this driver knows of in `text`.
  std::string scrub(std::string_view text) const;
  [[noreturn]] void fail(std::string_view doing, const SqlFailure& f) const;
  // Runs `sql`; throws Error(kDatabase) saying what we were `doing` when it fails.
  ResultPtr exec(const std::string& sql, std::string_view doing);
  ResultPtr exec_params(const std::string& sql, const std::vector<std::string>& params,
                        std::string_view doing);
  // ROLLBACK if a transaction is open; never throws.
  void rollback_quietly() noexcept;

  std::string table_name() const {
    return quote_identifier(table_schema_) + "." + quote_identifier(cfg_.table);
  }
  // Excludes other writers (golang-migrate and dbstep processes that skip the advisory lock
  // included) until commit; plain SELECTs still read the committed version meanwhile.
  std::string lock_sql() const {
    return fmt::format("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", table_name());
  }
  std::string lock_table_name() const {
    return quote_identifier(schema_) + "." + quote_identifier(cfg_.lock_table);
  }
  std::string history_table_name() const { return history_->name(); }

  // Opens a transaction, creates the version table when missing (and, `with_history`, the
  // history table, or checks the shape of the one there), then locks the version table against
  // writers (readers still see the committed state) and reads it.
  DbState begin_and_read_state(bool with_history = false);
  // In the open transaction: creates the history table, or when it `exists` checks that it has
  // dbstep's columns (Error(kDatabase) and a rollback when not).
  void prepare_history(bool exists);
  // An INSERT into the history table, and the migration it records (for messages).
  struct HistoryInsert {
    std::string sql;
    Version version = 0;
  };
  // In the open transaction: appends `history`, replaces the version table's row with `state`
  // and commits, in one round trip. On failure rolls back and throws, naming what failed.
  void write_rows_and_commit(const DbState& state, const std::vector<HistoryInsert>& history = {});
  // {expected} -> {next} in a transaction of its own, with `history` appended; false (nothing
  // written) when the state is not `expected`.
  bool write_state_checked(const DbState& expected, const DbState& next,
                           const std::vector<HistoryInsert>& history = {});
  // The error for a history INSERT that failed: a table of another shape says so.
  [[noreturn]] void history_failed(Version version, const SqlFailure& f) const;
  // Error(kDatabase) for a history table of another shape, found while `doing`.
  Error shape_error(std::string_view doing, const SqlFailure& f) const;
  // After a commit: the tables the transaction created or checked are known to exist.
  void mark_committed() {
    table_ready_ = true;
    if (history_pending_) history_ready_ = true;
    history_pending_ = false;
  }
  // Rows read from the history table with `sql`; nullopt when there is no such table.
  std::optional<ResultPtr> read_history(const std::string& sql, std::string_view doing);

  bool apply_in_transaction(const Step& step, const Script& script, const DbState& expected);
  bool apply_outside_transaction(const Step& step, const Script& script, const DbState& expected);
  // Adds the file's statements to `p`, in order.
  void add_statements(Pipeline& p, const Step& step, const Script& script) const;
  // The failure of the query at `index` of the file's statements (past the last: its end).
  Error statement_error(const Step& step, const Script& script, std::size_t index,
                        const SqlFailure& f) const;
  Error migration_error(const Step& step, const Statement* st, const SqlFailure& f,
                        std::string_view at = "") const;

  void lock_advisory(milliseconds timeout, const std::atomic<bool>* stop);
  void lock_table(milliseconds timeout, const std::atomic<bool>* stop);
  // Who holds advisory lock `key`, and how to end that session, as far as pg_locks can tell.
  std::string advisory_holder(std::uint32_t key);
  [[noreturn]] void advisory_timeout(milliseconds waited, std::uint32_t key);
  // Error(kStopped) for a lock wait ended by the stop flag; `lock` names the lock, `holder` who
  // holds it.
  [[noreturn]] void lock_wait_stopped(milliseconds waited, std::string_view lock,
                                      std::string_view holder) const;

  Config cfg_;
  ConnectSpec spec_;
  // Whether a connection pooler makes the advisory lock hold nothing (x-pooler; pooler_check.hpp).
  pg::PoolerCheck pooler_;
  int server_pid_ = 0;  // pg_backend_pid() at connection, for pooler_
  std::string described_;
  ConnPtr conn_;
  // interrupt()'s cancel request for conn_, made once the connection is up: PQcancel on it is
  // async-signal-safe, where PQgetCancel is not.
  CancelPtr cancel_;
  std::string database_;      // current_database()
  std::string schema_;        // current_schema()
  std::string table_schema_;  // where the version table lives: schema_ or the quoted one
  std::vector<std::uint32_t> lock_keys_;
  bool locked_ = false;
  bool table_ready_ = false;    // the version table is known to exist
  bool history_ready_ = false;  // the history table is known to exist, in dbstep's shape
  // begin_and_read_state() created or checked the history table in the open transaction.
  bool history_pending_ = false;
  std::optional<pg::HistorySql> history_;  // set once the schema is known
};

PostgresDriver::PostgresDriver(const Url& url, Config config)
    : cfg_(std::move(config)), spec_(connect_spec(url)), pooler_(url) {
  described_ = scrub(url.without_custom_params());
  std::vector<const char*> keys, values;
  for (std::size_t i = 0; i < spec_.keywords.size(); ++i) {
    keys.push_back(spec_.keywords[i].c_str());
    values.push_back(spec_.values[i].c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_.reset(pq().PQconnectdbParams(keys.data(), values.data(), 1));
  if (!conn_ || pq().PQstatus(conn_.get()) != CONNECTION_OK) {
    std::string why = conn_ ? one_line(pq().PQerrorMessage(conn_.get())) : "out of memory";
    throw Error(ErrorCode::kDatabase,
                fmt::format("cannot connect to PostgreSQL at {}: {}", described_, scrub(why)));
  }
  cancel_.reset(pq().PQgetCancel(conn_.get()));
  // Notices (NOTICE: ... does not exist, skipping) are not dbstep's output.
  pq().PQsetNoticeProcessor(
      conn_.get(), [](void*, const char*) {}, nullptr);

  if (cfg_.statement_timeout_ms > 0) {
    exec(fmt::format("SET statement_timeout = {}", cfg_.statement_timeout_ms),
         "setting x-statement-timeout");
  }
  auto r = exec("SELECT current_database(), current_schema(), pg_backend_pid()",
                "reading the current schema");
  server_pid_ = std::atoi(value_at(r.get(), 0, 2).c_str());
  database_ = value_at(r.get(), 0, 0);
  if (pq().PQgetisnull(r.get(), 0, 1)) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("no schema: no schema on the search_path of {} exists, so there is "
                            "nowhere to keep the version table; create one or set search_path",
                            described_));
  }
  schema_ = value_at(r.get(), 0, 1);
  table_schema_ = cfg_.schema.value_or(schema_);
  {
    std::string quoted = quote_identifier(cfg_.history_schema.value_or(table_schema_)) + "." +
                         quote_identifier(cfg_.history_table);
    history_.emplace(quoted, quoted);
  }

  // The key golang-migrate's library computes (with current_database()), and the one its CLI
  // computes from the URL's path ("/dbname"): holding both excludes either.
  auto add_key = [&](std::uint32_t k) {
    if (std::find(lock_keys_.begin(), lock_keys_.end(), k) == lock_keys_.end()) {
      lock_keys_.push_back(k);
    }
  };
  if (cfg_.lock_strategy == LockStrategy::kAdvisory) {
    add_key(advisory_lock_key(database_, {table_schema_, cfg_.table}));
    if (!spec_.url_path.empty())
      add_key(advisory_lock_key(spec_.url_path, {table_schema_, cfg_.table}));
  } else {
    // golang-migrate's pgx driver keys its lock table by the database name alone.
    add_key(advisory_lock_key(database_));
    if (!spec_.url_path.empty()) add_key(advisory_lock_key(spec_.url_path));
  }
}

PostgresDriver::~PostgresDriver() {
  if (locked_) {
    try {
      unlock();
    } catch (...) {
      // The server releases session locks when the connection closes below.
    }
  }
}

std::string PostgresDriver::scrub(std::string_view text) const {
  // The exact secrets first: the generic URL redaction could otherwise cut a password that holds
  // '@' or '/' and leave part of it.
  std::string s(text);
  for (const auto& secret : spec_.secrets) {
    if (secret.size() < 3) continue;  // too short to tell from ordinary text
    for (auto at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 5)) {
      s.replace(at, secret.size(), "xxxxx");
    }
  }
  return redact_secrets(s);
}

void PostgresDriver::fail(std::string_view doing, const SqlFailure& f) const {
  if (pg::PoolerCheck::is_lost_session(f.message)) {
    throw pg::PoolerCheck::lost_session_error(described_);
  }
  std::string msg = f.message;
  if (!f.sqlstate.empty()) msg += fmt::format(" (SQLSTATE {})", f.sqlstate);
  if (!f.detail.empty()) msg += "; detail: " + f.detail;
  if (!f.hint.empty()) msg += "; hint: " + f.hint;
  Error e(ErrorCode::kDatabase, scrub(fmt::format("{} on {} failed: {}", doing, described_, msg)));
  e.sqlstate = f.sqlstate;
  e.detail = scrub(f.verbose);
  throw e;
}

ResultPtr PostgresDriver::exec(const std::string& sql, std::string_view doing) {
  auto [r, failed] = run(conn_.get(), sql);
  if (failed) {
    rollback_quietly();
    fail(doing, *failed);
  }
  return std::move(r);
}

ResultPtr PostgresDriver::exec_params(const std::string& sql,
                                      const std::vector<std::string>& params,
                                      std::string_view doing) {
  auto [r, failed] = run_params(conn_.get(), sql, params);
  if (failed) {
    rollback_quietly();
    fail(doing, *failed);
  }
  return std::move(r);
}

void PostgresDriver::rollback_quietly() noexcept {
  history_pending_ = false;  // whatever the transaction created is gone
  if (conn_ && pq().PQtransactionStatus(conn_.get()) != PQTRANS_IDLE &&
      pq().PQstatus(conn_.get()) == CONNECTION_OK) {
    ResultPtr r(pq().PQexec(conn_.get(), "ROLLBACK"));
  }
}

// ---------------------------------------------------------------------------------------------
// Lock.

void PostgresDriver::lock(milliseconds timeout, const std::atomic<bool>* stop) {
  if (locked_) {
    throw Error(ErrorCode::kLocked,
                fmt::format("{} is already locked by this process", described_));
  }
  milliseconds wait = cfg_.lock_timeout.value_or(timeout);
  if (wait.count() < 0) wait = milliseconds(0);
  if (cfg_.lock_strategy == LockStrategy::kAdvisory) {
    // Behind a pooler in transaction mode the advisory lock would hold nothing: refused.
    pooler_.check_advisory_lock(pq().PQbackendPID(conn_.get()), server_pid_, described_);
    lock_advisory(wait, stop);
  } else {
    lock_table(wait, stop);
  }
  locked_ = true;
}

void PostgresDriver::interrupt() noexcept {
  // Asks the postmaster, over a connection of its own, to cancel whatever conn_'s backend is
  // running. A migration's statements already sit in the server's input (one pipeline), so
  // closing our end alone would not stop them: the cancel fails the running statement, which
  // aborts the transaction, and the rest of the pipeline, COMMIT included, is skipped.
  if (PGcancel* cancel = cancel_.get()) {
    char errbuf[256];  // a local buffer: what makes PQcancel safe in a signal handler
    [[maybe_unused]] int sent = pq().PQcancel(cancel, errbuf, sizeof errbuf);
  }
}

void PostgresDriver::lock_wait_stopped(milliseconds waited, std::string_view lock,
                                       std::string_view holder) const {
  throw Error(ErrorCode::kStopped,
              scrub(fmt::format("stopped after {} waiting for the migration lock ({}) on {}: "
                                "nothing was applied; {}",
                                format_duration(waited), lock, described_, holder)));
}

void PostgresDriver::lock_advisory(milliseconds timeout, const std::atomic<bool>* stop) {
  // Polled with pg_try_advisory_lock in autocommit, never waited for inside a statement: a
  // session blocked in pg_advisory_lock holds a snapshot, and a CREATE INDEX CONCURRENTLY run by
  // the lock's holder waits for every older snapshot, so the two would deadlock.
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  std::vector<std::string> tries;
  for (auto key : lock_keys_) tries.push_back(fmt::format("pg_try_advisory_lock({})", key));
  const std::string sql = fmt::format("SELECT {}", fmt::join(tries, ", "));
  auto pause = milliseconds(5);
  for (;;) {
    auto r = exec(sql, "taking the migration lock");
    std::vector<std::string> unlocks;
    std::optional<std::uint32_t> missing;
    for (std::size_t i = 0; i < lock_keys_.size(); ++i) {
      if (value_at(r.get(), 0, static_cast<int>(i)) == "t") {
        unlocks.push_back(fmt::format("pg_advisory_unlock({})", lock_keys_[i]));
      } else if (!missing) {
        missing = lock_keys_[i];
      }
    }
    if (!missing) return;
    if (!unlocks.empty()) {  // all keys or none: give back the ones we got
      ResultPtr undo(pq().PQexec(conn_.get(), fmt::format("SELECT {}", fmt::join(unlocks, ", ")).c_str()));
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      advisory_timeout(std::chrono::duration_cast<milliseconds>(now - started), *missing);
    }
    if (sleep_unless_stopped(std::min(pause, std::chrono::duration_cast<milliseconds>(
                                                 deadline - now) + milliseconds(1)),
                             stop)) {
      lock_wait_stopped(std::chrono::duration_cast<milliseconds>(Clock::now() - started),
                        fmt::format("advisory lock {}", *missing), advisory_holder(*missing));
    }
    pause = std::min(pause * 2, milliseconds(200));
  }
}

std::string PostgresDriver::advisory_holder(std::uint32_t key) {
  std::string holder = "another session holds it";
  auto [r, failed] = run_params(
      conn_.get(),
      "SELECT l.pid, a.application_name, host(a.client_addr), a.usename, "
      "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), a.state, "
      "to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
      "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
      "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
      "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
      "AND l.classid::bigint = 0 AND l.objid::bigint = $1::bigint "
      "AND l.pid <> pg_backend_pid() LIMIT 1",
      {std::to_string(key)});
  if (!failed && r && pq().PQntuples(r.get()) > 0) {
    std::string pid = value_at(r.get(), 0, 0);
    std::vector<std::string> facts;
    if (auto app = value_at(r.get(), 0, 1); !app.empty())
      facts.push_back(fmt::format("application \"{}\"", app));
    if (auto user = value_at(r.get(), 0, 3); !user.empty())
      facts.push_back(fmt::format("user {}", user));
    auto addr = value_at(r.get(), 0, 2);
    facts.push_back(addr.empty()
                        ? std::string("client on a local socket (or not visible to this user)")
                        : fmt::format("client {}", addr));
    if (auto since = value_at(r.get(), 0, 4); !since.empty())
      facts.push_back(fmt::format("connected since {} UTC", since));
    if (auto st = value_at(r.get(), 0, 5); !st.empty()) {
      facts.push_back(fmt::format("{} since {} UTC", st, value_at(r.get(), 0, 6)));
    }
    holder = fmt::format(
        "PostgreSQL session {} holds it ({}); if that run is over or stuck, end "
        "it with SELECT pg_terminate_backend({})",
        pid, fmt::join(facts, ", "), pid);
  }
  return holder;
}

void PostgresDriver::advisory_timeout(milliseconds waited, std::uint32_t key) {
  Error e(ErrorCode::kLockTimeout,
          scrub(fmt::format("timed out after {} waiting for the migration lock (advisory lock {}) "
                            "on {}: {}",
                            format_duration(waited), key, described_, advisory_holder(key))));
  throw e;
}

void PostgresDriver::lock_table(milliseconds timeout, const std::atomic<bool>* stop) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  auto left_ms = [&] {
    return std::max<std::int64_t>(
        1, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
  };
  // The lock table, created under the same timeout.
  for (int attempt = 0;; ++attempt) {
    auto [r, failed] = run(conn_.get(), fmt::format("BEGIN; SET LOCAL statement_timeout = 0; "
                                                    "SET LOCAL lock_timeout = {}; "
                                                    "CREATE TABLE IF NOT EXISTS {} "
                                                    "(lock_id BIGINT NOT NULL PRIMARY KEY); COMMIT",
                                                    left_ms(), lock_table_name()));
    if (!failed) break;
    rollback_quietly();
    // Two processes creating it at once: one loses on the catalog's unique index, on the table
    // (42P07) or on its row type (42710 "type ... already exists"); look again.
    if ((failed->sqlstate == "23505" || failed->sqlstate == "42P07" ||
         failed->sqlstate == "42710") &&
        attempt < 3) {
      continue;
    }
    if (failed->sqlstate == "55P03" || Clock::now() >= deadline) break;  // reported below
    fail(fmt::format("creating the lock table {}", lock_table_name()), *failed);
  }
  std::string values;
  for (auto k : lock_keys_) values += fmt::format("{}({})", values.empty() ? "" : ", ", k);
  auto pause = milliseconds(20);
  for (;;) {
    auto [r, failed] =
        run(conn_.get(), fmt::format("BEGIN; SET LOCAL statement_timeout = 0; "
                                     "SET LOCAL lock_timeout = {}; "
                                     "INSERT INTO {} (lock_id) VALUES {} ON CONFLICT DO NOTHING",
                                     left_ms(), lock_table_name(), values));
    if (!failed && std::atoi(pq().PQcmdTuples(r.get())) == static_cast<int>(lock_keys_.size())) {
      exec("COMMIT", "taking the migration lock");
      return;
    }
    rollback_quietly();
    if (failed && failed->sqlstate != "55P03" && failed->sqlstate != "42P01") {
      fail("taking the migration lock", *failed);
    }
    if (Clock::now() >= deadline) break;
    if (sleep_unless_stopped(
            std::min(pause, std::chrono::duration_cast<milliseconds>(deadline - Clock::now())),
            stop)) {
      lock_wait_stopped(std::chrono::duration_cast<milliseconds>(Clock::now() - started),
                        fmt::format("lock table {}", lock_table_name()),
                        fmt::format("another process holds lock_id {}",
                                    fmt::join(lock_keys_, ", ")));
    }
    pause = std::min(pause * 2, milliseconds(500));
  }
  std::string ids = fmt::format("{}", fmt::join(lock_keys_, ", "));
  throw Error(ErrorCode::kLockTimeout,
              scrub(fmt::format(
                  "timed out after {} waiting for the migration lock on {}: the "
                  "lock table {} holds lock_id {} for another process "
                  "(x-lock-strategy=table cannot tell which). If no migration is "
                  "running, a crashed run left it behind: DELETE FROM {} WHERE "
                  "lock_id IN ({})",
                  format_duration(std::chrono::duration_cast<milliseconds>(Clock::now() - started)),
                  described_, lock_table_name(), ids, lock_table_name(), ids)));
}

void PostgresDriver::unlock() {
  if (!locked_) {
    throw Error(ErrorCode::kLocked,
                fmt::format("can't unlock {}, as not currently locked", described_));
  }
  locked_ = false;
  if (cfg_.lock_strategy == LockStrategy::kAdvisory) {
    std::string sql = "SELECT";
    for (std::size_t i = 0; i < lock_keys_.size(); ++i) {
      sql += fmt::format("{} pg_advisory_unlock({})", i ? "," : "", lock_keys_[i]);
    }
    exec(sql, "releasing the migration lock");
  } else {
    exec(fmt::format("DELETE FROM {} WHERE lock_id IN ({})", lock_table_name(),
                     fmt::join(lock_keys_, ", ")),
         "releasing the migration lock");
  }
}

// ---------------------------------------------------------------------------------------------
// State.

void PostgresDriver::prepare_history(bool exists) {
  if (!exists) {
    exec(history_->create(), fmt::format("creating the history table {}", history_table_name()));
  } else if (auto [probe, failed] = run(conn_.get(), history_->select() + " LIMIT 0"); failed) {
    const std::string doing = fmt::format("checking the history table {}", history_table_name());
    // A table of that name that is not dbstep's (a user's own): nothing is written.
    rollback_quietly();
    if (is_wrong_shape(failed->sqlstate)) throw shape_error(doing, *failed);
    fail(doing, *failed);
  }
  history_pending_ = true;
}

DbState parse_state(const PGresult* r, const std::string& where) {
  DbState s;
  if (!r || pq().PQntuples(r) == 0) return s;
  std::string v = value_at(r, 0, 0);
  s.dirty = value_at(r, 0, 1) == "t";
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < -1) {
    throw Error(
        ErrorCode::kDatabase,
        fmt::format("{} holds version {}, which is not a version (expected -1 or more)", where, v));
  }
  if (n >= 0) s.version = static_cast<Version>(n);
  return s;
}

DbState PostgresDriver::state() {
  const std::string sql = fmt::format("SELECT version, dirty FROM {} LIMIT 1", table_name());
  auto [r, failed] = run(conn_.get(), sql);
  if (failed) {
    // No table (or no schema for a quoted name) is "nothing applied"; it is never created here.
    if (failed->sqlstate == "42P01" || failed->sqlstate == "3F000") return DbState{};
    fail(fmt::format("reading the version from {}", table_name()), *failed);
  }
  return parse_state(r.get(), table_name());
}

DbState PostgresDriver::begin_and_read_state(bool with_history) {
  std::string begin = "BEGIN; ";
  history_pending_ = false;
  const bool check_history = with_history && !history_ready_;
  if (!table_ready_ || check_history) {
    exec("BEGIN", "starting a transaction");
    begin.clear();
    auto r = exec_params("SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
                         {table_name(), history_table_name()}, "looking for the version table");
    if (!table_ready_ && value_at(r.get(), 0, 0) != "t") {
      exec(fmt::format("CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, "
                       "dirty boolean not null)",
                       table_name()),
           fmt::format("creating the version table {}", table_name()));
    }
    if (check_history) prepare_history(value_at(r.get(), 0, 1) == "t");
  }
  // One round trip when the table is known to exist.
  if (auto check = locked_ ? pooler_.migration_check_sql(lock_keys_) : ""; !check.empty()) {
    begin += check + "; ";
  }
  auto r = exec(fmt::format("{}{}; SELECT version, dirty FROM {} LIMIT 1", begin, lock_sql(),
                            table_name()),
                fmt::format("reading the version from {}", table_name()));
  return parse_state(r.get(), table_name());
}

std::string version_literal(const OptVersion& v) {
  if (!v) return "-1";
  if (*v > static_cast<Version>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(
        ErrorCode::kInvalidArgument,
        fmt::format("version {} does not fit in the bigint version column of PostgreSQL", *v));
  }
  return std::to_string(*v);
}

// golang-migrate's rule: {none, clean} is an empty table, {none, dirty} is the row (-1, true).
std::vector<std::string> rows_statements(const std::string& table, const DbState& s) {
  std::vector<std::string> out{fmt::format("DELETE FROM {}", table)};
  if (s.version || s.dirty) {
    out.push_back(fmt::format("INSERT INTO {} (version, dirty) VALUES ({}, {})", table,
                              version_literal(s.version), s.dirty ? "true" : "false"));
  }
  return out;
}

std::string rows_sql(const std::string& table, const DbState& s) {
  return fmt::format("{}", fmt::join(rows_statements(table, s), "; "));
}

// A query that fails with division_by_zero (SQLSTATE 22012) unless the version table holds `s`
// (its first row, as state() reads it). Sent right after the lock in a migration's pipeline, it
// is the compare of apply()'s compare-and-swap: when another process has moved the version, the
// server skips everything after it and the transaction rolls back.
std::string check_state_sql(const std::string& table, const DbState& s) {
  if (!s.version && !s.dirty) return fmt::format("SELECT 1 / (NOT EXISTS (SELECT FROM {}))::int", table);
  return fmt::format(
      "SELECT 1 / (SELECT count(*) FROM (SELECT version, dirty FROM {} LIMIT 1) AS s "
      "WHERE version = {} AND dirty = {})::int",
      table, version_literal(s.version), s.dirty ? "true" : "false");
}
constexpr std::string_view kStateMoved = "22012";

void PostgresDriver::write_rows_and_commit(const DbState& s,
                                           const std::vector<HistoryInsert>& history) {
  const std::string doing =
      fmt::format("recording version {} in {}", to_string(s.version), table_name());
  if (history.empty()) {
    exec(rows_sql(table_name(), s) + "; COMMIT", doing);
  } else {
    std::optional<Pipeline::Failure> failed;
    {
      Pipeline p(conn_.get(), /*pipelined=*/true);
      for (const auto& h : history) p.add(h.sql);
      for (const auto& sql : rows_statements(table_name(), s)) p.add(sql);
      p.add("COMMIT");
      failed = p.finish();
    }
    if (failed) {
      rollback_quietly();
      if (failed->index < history.size()) {
        history_failed(history[failed->index].version, failed->why);
      }
      fail(doing, failed->why);
    }
  }
  mark_committed();
}

bool PostgresDriver::write_state_checked(const DbState& expected, const DbState& next,
                                         const std::vector<HistoryInsert>& history) {
  version_literal(next.version);  // fail before touching anything
  if (begin_and_read_state(!history.empty()) != expected) {
    rollback_quietly();
    return false;
  }
  write_rows_and_commit(next, history);
  return true;
}

void PostgresDriver::set_state(const DbState& s) {
  version_literal(s.version);
  begin_and_read_state();
  write_rows_and_commit(s);
}

void PostgresDriver::record_state(const DbState& s, const std::vector<HistoryRow>& rows) {
  version_literal(s.version);
  // Rows written by hand (force, baseline, repair) ran no SQL: now, and no duration.
  const pg::HistorySql::Timing now{format_utc(std::chrono::system_clock::now()), 0};
  std::vector<HistoryInsert> inserts;
  inserts.reserve(rows.size());
  for (const auto& row : rows) inserts.push_back({history_->insert(row, now), row.version});
  begin_and_read_state(!inserts.empty());
  write_rows_and_commit(s, inserts);
}

bool is_wrong_shape(std::string_view sqlstate) {
  // undefined column or function, datatype mismatch, a NOT NULL column dbstep does not fill, a
  // value the column's type cannot take: the table is not dbstep's.
  return sqlstate == "42703" || sqlstate == "42883" || sqlstate == "42804" || sqlstate == "23502" ||
         sqlstate == "22P02";
}

Error PostgresDriver::shape_error(std::string_view doing, const SqlFailure& f) const {
  std::string why = f.message;
  if (!f.sqlstate.empty()) why += fmt::format(" (SQLSTATE {})", f.sqlstate);
  Error e(ErrorCode::kDatabase,
          scrub(fmt::format("{} on {} failed: {}", doing, described_, history_->wrong_shape(why))));
  e.sqlstate = f.sqlstate;
  e.detail = scrub(f.verbose);
  return e;
}

void PostgresDriver::history_failed(Version version, const SqlFailure& f) const {
  const std::string doing =
      fmt::format("recording the history of migration {} in {}", version, history_table_name());
  if (is_wrong_shape(f.sqlstate)) throw shape_error(doing, f);
  fail(doing, f);
}

std::optional<ResultPtr> PostgresDriver::read_history(const std::string& sql,
                                                      std::string_view doing) {
  // In autocommit, outside any transaction: a failure leaves nothing open, and reading never
  // creates the table.
  auto [r, failed] = run(conn_.get(), sql);
  if (!failed) return std::move(r);
  rollback_quietly();
  // No table (or no schema for a quoted name): a database without history.
  if (failed->sqlstate == "42P01" || failed->sqlstate == "3F000") return std::nullopt;
  if (is_wrong_shape(failed->sqlstate)) throw shape_error(doing, *failed);
  fail(doing, *failed);
}

std::optional<std::vector<HistoryRow>> PostgresDriver::history() {
  auto r = read_history(history_->select(),
                        fmt::format("reading the history from {}", history_table_name()));
  if (!r) return std::nullopt;
  const PGresult* res = r->get();
  const int n = pq().PQntuples(res), columns = pq().PQnfields(res);
  std::vector<HistoryRow> rows;
  rows.reserve(static_cast<std::size_t>(n));
  std::vector<std::optional<std::string>> values(static_cast<std::size_t>(columns));
  for (int i = 0; i < n; ++i) {
    for (int c = 0; c < columns; ++c) {
      if (pq().PQgetisnull(res, i, c)) {
        values[c].reset();
      } else {
        values[c].emplace(pq().PQgetvalue(res, i, c),
                          static_cast<std::size_t>(pq().PQgetlength(res, i, c)));
      }
    }
    rows.push_back(history_->parse_row(values));
  }
  return rows;
}

std::optional<std::string> PostgresDriver::stored_down(Version version) {
  if (version > static_cast<Version>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  const std::string doing = fmt::format("reading the stored down SQL of migration {} from {}",
                                        version, history_table_name());
  auto r = read_history(history_->select_down(version), doing);
  if (!r || pq().PQntuples(r->get()) == 0 || pq().PQgetisnull(r->get(), 0, 0)) return std::nullopt;
  auto bytes = pg::from_hex(std::string(
      pq().PQgetvalue(r->get(), 0, 0), static_cast<std::size_t>(pq().PQgetlength(r->get(), 0, 0))));
  if (!bytes) {
    throw Error(ErrorCode::kDatabase,
                fmt::format("{} on {}: the server did not send it as hex", doing, described_));
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Migrations.

Error PostgresDriver::migration_error(const Step& step, const Statement* st, const SqlFailure& f,
                                      std::string_view at) const {
  const std::string& text = step.sql;
  std::string where;
  TextPosition pos{0, 0};
  std::string statement;
  if (st) {
    std::string_view sv = std::string_view(text).substr(st->offset, st->length);
    const std::size_t start = skip_blank(sv, 0, SqlDialect::kPostgres);
    statement = trim(sv.substr(start));
    std::size_t offset;
    if (f.position > 0) {
      // PostgreSQL counts characters from 1 in the text we sent: this statement.
      offset = st->offset + byte_offset_of_char(sv, static_cast<std::size_t>(f.position - 1));
      pos = position_at(text, offset);
      where = fmt::format("at line {}, column {}", pos.line, pos.column);
    } else {
      offset = st->offset + start;
      pos = position_at(text, offset);
      where = fmt::format("in the statement at line {}, column {}", pos.line, pos.column);
    }
  } else {
    where = std::string(at);
  }
  std::string msg = f.message;
  if (!f.sqlstate.empty()) msg += fmt::format(" (SQLSTATE {})", f.sqlstate);
  if (!f.detail.empty()) msg += "; detail: " + one_line(f.detail);
  if (!f.hint.empty()) msg += "; hint: " + one_line(f.hint);
  if (!f.context.empty()) msg += "; context: " + one_line(f.context);
  Error e(ErrorCode::kMigrationFailed, scrub(fmt::format("migration {} ({}) failed {}: {}",
                                                         step.version, step.file, where, msg)));
  e.file = step.file;
  e.version = step.version;
  e.line = pos.line;
  e.column = pos.column;
  e.sqlstate = f.sqlstate;
  e.detail = scrub(f.verbose);
  e.statement = scrub(statement_excerpt(statement, 2000));
  return e;
}

void PostgresDriver::add_statements(Pipeline& p, const Step& step, const Script& script) const {
  for (const auto& st : script.statements) p.add(step.sql.substr(st.offset, st.length));
}

Error PostgresDriver::statement_error(const Step& step, const Script& script,
                                      std::size_t index, const SqlFailure& f) const {
  if (index < script.statements.size()) return migration_error(step, &script.statements[index], f);
  return migration_error(step, nullptr, f, "at its end");
}

bool PostgresDriver::apply(const Step& step, const DbState& expected) {
  const DbState done{step.target, false};
  if (!step.has_file()) {
    // Its row takes the server's clock, like a migration's: the transaction's start, and the
    // time to the append.
    std::vector<HistoryInsert> history;
    if (step.history) history.push_back({history_->insert(*step.history), step.version});
    return write_state_checked(expected, done, history);
  }
  Script script = analyze(step);
  version_literal(step.target);
  if (script.outside_transaction) return apply_outside_transaction(step, script, expected);
  return apply_in_transaction(step, script, expected);
}

bool PostgresDriver::apply_batch(const DbState& expected, const StepFeed& next) {
  if (begin_and_read_state() != expected) {
    rollback_quietly();
    return false;
  }
  try {
    std::optional<DbState> last;
    // Every step's row, written with the version row and COMMIT at the end, in the batch's
    // transaction. Their timing is the client's: the server's now() is the batch's start for
    // all of them, and a row sent in its step's pipeline could not know the step's duration.
    std::vector<HistoryInsert> history;
    while (const Step* step = next()) {
      const auto started_at = std::chrono::system_clock::now();
      const auto started = Clock::now();
      if (step->history && !history_ready_ && !history_pending_) {
        // Made ready inside the batch's transaction: a failed batch leaves no table behind.
        auto r = exec_params("SELECT to_regclass($1) IS NOT NULL", {history_table_name()},
                             "looking for the history table");
        prepare_history(value_at(r.get(), 0, 0) == "t");
      }
      if (step->has_file()) {
        Script script = analyze(*step);
        if (script.outside_transaction) {
          throw cannot_batch(*step, script.why_outside);
        }
        // One round trip per migration, inside the batch's transaction.
        Pipeline p(conn_.get(), script.pipelinable);
        add_statements(p, *step, script);
        if (auto failed = p.finish()) throw statement_error(*step, script, failed->index, failed->why);
      }
      last = DbState{step->target, false};
      version_literal(last->version);
      if (step->history) {
        const pg::HistorySql::Timing timing{
            format_utc(started_at),
            std::chrono::duration<double, std::milli>(Clock::now() - started).count()};
        history.push_back({history_->insert(*step->history, timing), step->version});
      }
    }
    if (!last) {
      rollback_quietly();
      return true;
    }
    std::optional<Pipeline::Failure> failed;
    std::size_t commit = 0;
    {
      Pipeline p(conn_.get(), /*pipelined=*/true);
      for (const auto& h : history) p.add(h.sql);
      for (const auto& sql : rows_statements(table_name(), *last)) p.add(sql);
      p.add("COMMIT");
      commit = p.size() - 1;
      failed = p.finish();
    }
    if (failed && failed->index < history.size()) {
      rollback_quietly();
      history_failed(history[failed->index].version, failed->why);
    }
    if (failed && failed->index < commit) {
      rollback_quietly();
      fail(fmt::format("recording version {} in {}", to_string(last->version), table_name()),
           failed->why);
    }
    if (failed) {
      // Deferred constraints are checked at COMMIT, after the last statement of the batch.
      SqlFailure f = failed->why;
      rollback_quietly();
      Error e(ErrorCode::kMigrationFailed,
              scrub(fmt::format("the migrations up to version {} failed at COMMIT: {}{}",
                                to_string(last->version), f.message,
                                f.sqlstate.empty() ? "" : " (SQLSTATE " + f.sqlstate + ")")));
      e.sqlstate = f.sqlstate;
      e.detail = scrub(f.verbose);
      throw e;
    }
  } catch (...) {
    rollback_quietly();
    throw;
  }
  mark_committed();
  return true;
}

bool PostgresDriver::apply_in_transaction(const Step& step, const Script& script,
                                          const DbState& expected) {
  const DbState done{step.target, false};
  try {
    // The session's first write makes sure the version table (and the history table) exist,
    // in round trips of their own; after that, BEGIN, the lock and the state check travel with
    // the migration: the whole migration, its history row included, is one round trip.
    const bool with_history = step.history.has_value();
    const bool ready = table_ready_ && (!with_history || history_ready_);
    if (!ready && begin_and_read_state(with_history) != expected) {
      rollback_quietly();
      return false;
    }
    Pipeline p(conn_.get(), script.pipelinable);
    std::size_t first = 0;  // the index of the file's first statement
    if (ready) {
      p.add("BEGIN");
      if (auto check = locked_ ? pooler_.migration_check_sql(lock_keys_) : ""; !check.empty()) {
        p.add(check);
      }
      p.add(lock_sql());
      p.add(check_state_sql(table_name(), expected));
      first = p.size();
    }
    add_statements(p, step, script);
    const std::size_t bookkeeping = p.size();
    // The row's applied_at is the server's now(), the transaction's start; its duration runs
    // to the append, after the file's last statement.
    if (with_history) p.add(history_->insert(*step.history));
    for (const auto& sql : rows_statements(table_name(), done)) p.add(sql);
    p.add("COMMIT");
    const std::size_t commit = p.size() - 1;
    if (auto failed = p.finish()) {
      rollback_quietly();  // first: nothing below may leave the transaction open
      const std::size_t i = failed->index;
      const SqlFailure& f = failed->why;
      if (i < first) {
        if (i == first - 1 && f.sqlstate == kStateMoved) return false;  // another process won
        fail(fmt::format("reading the version from {}", table_name()), f);
      }
      if (i < bookkeeping) throw statement_error(step, script, i - first, f);
      if (with_history && i == bookkeeping) history_failed(step.version, f);
      // Deferred constraints are checked at COMMIT, after the last statement.
      if (i == commit) throw migration_error(step, nullptr, f, "at COMMIT");
      if (i < commit) {
        fail(fmt::format("recording version {} in {}", to_string(done.version), table_name()), f);
      }
      throw migration_error(step, nullptr, f, "at its end");
    }
  } catch (...) {
    rollback_quietly();  // no path leaves a transaction open on the session
    throw;
  }
  mark_committed();
  return true;
}

bool PostgresDriver::apply_outside_transaction(const Step& step, const Script& script,
                                               const DbState& expected) {
  // The row is written after the file ran, outside the step's statements: its timing is the
  // client's (when the step started, and how long it took).
  const auto started_at = std::chrono::system_clock::now();
  const auto started = Clock::now();
  auto history_row = [&](std::optional<HistoryKind> kind) {
    std::vector<HistoryInsert> out;
    if (!step.history) return out;
    HistoryRow row = *step.history;
    if (kind) row.kind = *kind;
    const pg::HistorySql::Timing timing{
        format_utc(started_at),
        std::chrono::duration<double, std::milli>(Clock::now() - started).count()};
    out.push_back({history_->insert(row, timing), step.version});
    return out;
  };
  // golang-migrate's dirty protocol: whatever happens between the two writes is visible. The
  // history table is made ready with the dirty mark, so the last write cannot fail for want of it.
  version_literal(step.target);
  if (begin_and_read_state(step.history.has_value()) != expected) {
    rollback_quietly();
    return false;
  }
  write_rows_and_commit(DbState{step.target, true});
  {
    // Not pipelined: the queries of one pipeline share an implicit transaction, which CREATE
    // INDEX CONCURRENTLY and the like refuse. Each statement runs and commits on its own.
    Pipeline p(conn_.get(), /*pipelined=*/false);
    add_statements(p, step, script);
    std::optional<Error> error;
    if (auto failed = p.finish()) {
      error = statement_error(step, script, failed->index, failed->why);
    } else if (pq().PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      SqlFailure f;
      f.message =
          "the file opens a transaction (BEGIN) that it does not end (COMMIT); it was "
          "rolled back";
      f.verbose = f.message;
      error = migration_error(step, nullptr, f, "at its end");
    }
    if (error) {
      rollback_quietly();  // a transaction the file opened and did not finish
      // When no statement of the file was committed, the rollback took everything back: the
      // dirty mark is taken back too. Otherwise the database stays dirty for a person to see.
      if (!p.committed()) {
        try {
          write_state_checked(DbState{step.target, true}, expected);
        } catch (const Error&) {
          rollback_quietly();  // the migration's error matters more; the mark stays
        }
      } else if (step.history) {
        // The database stays dirty: the history says this step failed part way.
        try {
          auto failed_row = history_row(HistoryKind::kFailed);
          exec("BEGIN", "starting a transaction");
          exec(failed_row.front().sql, fmt::format("recording the failure of migration {} in {}",
                                                   step.version, history_table_name()));
          exec("COMMIT", "recording the failure in the history");
        } catch (const Error&) {
          rollback_quietly();  // best effort: the migration's error matters more
        }
      }
      throw *error;
    }
  }
  exec("BEGIN", "starting a transaction");
  write_rows_and_commit(DbState{step.target, false}, history_row(std::nullopt));
  return true;
}

// ---------------------------------------------------------------------------------------------
// drop.

void PostgresDriver::drop() {
  // Everything in the current schema that is not part of an extension, in an order that lets
  // CASCADE and IF EXISTS absorb dependencies: relations, free sequences, routines, types.
  const std::string list_sql = R"SQL(
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT kind, name FROM (
  SELECT 1 AS ord,
         CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind,
         format('%I.%I', current_schema(), c.relname) AS name
    FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
     AND NOT (c.relkind IN ('r', 'p') AND c.relname = $1)
  UNION ALL
  SELECT 2, 'SEQUENCE', format('%I.%I', current_schema(), c.relname)
    FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind = 'S'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                     AND d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
  UNION ALL
  SELECT 3, CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
         format('%I.%I(%s)', current_schema(), p.proname, pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p
   WHERE p.pronamespace = (SELECT oid FROM ns)
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                     AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
  UNION ALL
  SELECT 4, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
         format('%I.%I', current_schema(), t.typname)
    FROM pg_type t
   WHERE t.typnamespace = (SELECT oid FROM ns)
     AND (t.typtype IN ('d', 'e', 'r')
          OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
          OR (t.typtype = 'b' AND t.typcategory <> 'A'))
     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
) o ORDER BY ord, name)SQL";
  std::string keep = cfg_.lock_strategy == LockStrategy::kTable ? cfg_.lock_table : std::string();
  exec("BEGIN", "starting a transaction");
  auto r = exec_params(list_sql, {keep}, fmt::format("listing the objects in schema {}", schema_));
  for (int i = 0; i < pq().PQntuples(r.get()); ++i) {
    std::string kind = value_at(r.get(), i, 0);
    std::string name = value_at(r.get(), i, 1);
    exec(fmt::format("DROP {} IF EXISTS {} CASCADE", kind, name),
         fmt::format("dropping {} {}", kind, name));
  }
  exec(fmt::format("DROP TABLE IF EXISTS {} CASCADE", table_name()),
       fmt::format("dropping the version table {}", table_name()));
  // Gone already when it is in the current schema; not when x-migrations-table-quoted put it in
  // another one.
  exec(fmt::format("DROP TABLE IF EXISTS {} CASCADE", history_table_name()),
       fmt::format("dropping the history table {}", history_table_name()));
  exec("COMMIT", "dropping everything");
  table_ready_ = false;
  history_ready_ = false;
}

}  // namespace

std::uint32_t advisory_lock_key(std::string_view database_name,
                                std::initializer_list<std::string_view> additional) {
  std::string s;
  for (auto part : additional) {
    s += part;
    s += '\0';
  }
  s += database_name;
  return crc32_ieee(s) * 1486364155u;
}

std::unique_ptr<Driver> open_postgres(const Url& url) {
  Config config = parse_config(url);
  try {
    return std::make_unique<PostgresDriver>(url, std::move(config));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal,
                fmt::format("opening {}: {}", url.redacted(), redact_secrets(e.what())));
  }
}

}  // namespace dbstep::drivers
