// The source suite (golang-migrate's source/testing.Test) on both sources with its fixture
// {1 up+down, 3 up, 4 up+down, 5 down, 7 up+down}, plus what each source does on its own.

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "core/error.hpp"
#include "core/migration.hpp"
#include "core/registry.hpp"
#include "dbstep_embedded/test_bytes.hpp"
#include "dbstep_embedded/test_fixture.hpp"
#include "sources/dir/dir_source.hpp"
#include "sources/embedded/embedded_source.hpp"
#include "tests/support.hpp"

using namespace dbstep;

namespace {

const std::filesystem::path kData = DBSTEP_TEST_DATA_DIR;

void source_suite(Source& source) {
  auto idx = MigrationIndex::build(source.list(), source.describe());
  CHECK(idx.first() == OptVersion{1});
  const std::map<Version, OptVersion> prev = {{0, {}}, {1, {}}, {2, {}}, {3, 1}, {4, 3},
                                              {5, 4},  {6, {}}, {7, 5},  {8, {}}, {9, {}}};
  for (auto [v, want] : prev) {
    CAPTURE(v);
    CHECK(idx.prev(v) == want);
  }
  const std::map<Version, OptVersion> next = {{0, {}}, {1, 3}, {2, {}}, {3, 4},  {4, 5},
                                              {5, 7},  {6, {}}, {7, {}}, {8, {}}, {9, {}}};
  for (auto [v, want] : next) {
    CAPTURE(v);
    CHECK(idx.next(v) == want);
  }
  for (Version v : {1, 3, 4, 7}) {
    CAPTURE(v);
    const auto* e = idx.find(v);
    REQUIRE(e);
    REQUIRE(e->up);
    CHECK_FALSE(e->up->identifier.empty());
    CHECK(source.read(e->up->name) == std::to_string(v) + " up");
  }
  for (Version v : {0, 2, 5, 6, 8}) {
    const auto* e = idx.find(v);
    CHECK((e == nullptr || !e->up));
  }
  for (Version v : {1, 4, 5, 7}) {
    CAPTURE(v);
    const auto* e = idx.find(v);
    REQUIRE(e);
    REQUIRE(e->down);
    CHECK(source.read(e->down->name) == std::to_string(v) + " down");
  }
  for (Version v : {0, 2, 3, 6, 8}) {
    const auto* e = idx.find(v);
    CHECK((e == nullptr || !e->down));
  }
  CHECK_FALSE(idx.contains(2));  // sub/2_nested.up.sql is in a sub-folder: ignored
  CHECK_THROWS_AS(source.read("no_such_file.up.sql"), Error);
}

}  // namespace

TEST_CASE("sources: the directory source passes the source suite") {
  auto src = sources::open_directory(Url::parse("file://" + (kData / "fixture").string()));
  source_suite(*src);
}

TEST_CASE("sources: the embedded source passes the source suite") {
  auto src = sources::open_embedded(dbstep_embedded::test_fixture());
  source_suite(*src);
}

TEST_CASE("sources: embedding is byte-exact (BOM, CRLF, no final newline, empty file)") {
  auto embedded = sources::open_embedded(dbstep_embedded::test_bytes());
  auto dir = sources::open_directory(Url::parse("file://" + (kData / "bytes").string()));
  for (const char* name : {"1_crlf_bom.up.sql", "1_crlf_bom.down.sql"}) {
    CAPTURE(name);
    CHECK(embedded->read(name) == testing::read_file(kData / "bytes" / name));
    CHECK(dir->read(name) == embedded->read(name));
  }
  CHECK(embedded->read("1_crlf_bom.down.sql").empty());
}

TEST_CASE("sources: directory URL forms and errors name the folder") {
  testing::TempDir tmp;
  testing::write_file(tmp / "m" / "1_a.up.sql", "x");
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(tmp.path());
  CHECK(sources::open_directory(Url::parse("file://m"))->list().size() == 1);
  CHECK(sources::open_directory(Url::parse("file://./m"))->list().size() == 1);
  CHECK(sources::open_directory(Url::parse("file://."))->list().size() == 0);  // cwd: only a folder
  // golang-migrate reads file:// as the current folder; dbstep refuses it and says how to write it.
  try {
    sources::open_directory(Url::parse("file://"));
    std::filesystem::current_path(cwd);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("\"file://\" names no folder") != std::string::npos);
    CHECK(std::string(e.what()).find("file://./migrations") != std::string::npos);
  }
  std::filesystem::current_path(cwd);

  try {
    sources::open_directory(Url::parse("file://" + (tmp / "missing").string()));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kSourceUnavailable);
    CHECK(std::string(e.what()).find((tmp / "missing").string()) != std::string::npos);
    CHECK(std::string(e.what()).find("does not exist") != std::string::npos);
  }
  try {
    sources::open_directory(Url::parse("file://" + (tmp / "m" / "1_a.up.sql").string()));
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("is not a folder") != std::string::npos);
  }
}

TEST_CASE("sources: the registry opens plain paths and embedded sets by name") {
  Registry registry;
  registry.add_source("file", &sources::open_directory);
  registry.add_source("embedded", sources::embedded_factory({&dbstep_embedded::test_fixture(),
                                                             &dbstep_embedded::test_bytes()}));
  CHECK(registry.open_source((kData / "fixture").string())->list().size() >= 8);
  CHECK(registry.open_source("embedded://")->describe().find("test_fixture") != std::string::npos);
  CHECK(registry.open_source("embedded://test_bytes")->list().size() == 2);
  try {
    registry.open_source("embedded://nope");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("test_fixture, test_bytes") != std::string::npos);
  }
  try {
    registry.open_source("s3://bucket/x");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnknownScheme);
    CHECK(std::string(e.what()).find("embedded, file") != std::string::npos);
  }
}

TEST_CASE("sources: a broken symbolic link named like a migration is an error naming it") {
  testing::TempDir tmp;
  testing::write_file(tmp / "m" / "2_b.up.sql", "x");
  std::filesystem::create_symlink("nowhere", tmp / "m" / "README.md");  // not a migration: ignored
  CHECK(sources::open_directory(Url::parse("file://" + (tmp / "m").string()))->list() ==
        std::vector<std::string>{"2_b.up.sql"});

  struct Case {
    const char* link;
    const char* target;
    const char* says;
  };
  for (const Case& c : {Case{"1_x.up.sql", "nowhere", "is a dangling symbolic link (-> nowhere)"},
                        Case{"1_x.up.sql", "1_x.up.sql", "is a symbolic link loop"},
                        Case{"99999999999999999999_x.up.sql", "gone", "dangling"}}) {
    CAPTURE(c.link);
    CAPTURE(c.target);
    testing::TempDir t;
    testing::write_file(t / "2_b.up.sql", "x");
    std::filesystem::create_symlink(c.target, t / c.link);
    try {
      sources::open_directory(Url::parse("file://" + t.str()))->list();
      FAIL("expected an error");
    } catch (const Error& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(e.code() == ErrorCode::kSourceUnavailable);
      CHECK(e.file == c.link);
      CHECK(what.find((t / c.link).string()) != std::string::npos);
      CHECK(what.find(c.says) != std::string::npos);
      CHECK(what.find("No such file or directory") == std::string::npos);
    }
  }
}
