// dbstep_bench_embedded10k holds only the generated table of 10,000 embedded files
// (bench/CMakeLists.txt); a static library needs at least one source of its own.
namespace dbstep_bench {
int embedded_anchor() { return 0; }
}  // namespace dbstep_bench
