// main() of the MPI test programs: every rank makes the Runtime; ranks 1..N-1
// serve tasks inside it, rank 0 returns from it and runs the doctest cases.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <ostream>
#include <procpool/mpi.hpp>

namespace {

// Names each test case as it starts and says how long it took, so that a
// run that hangs says where (the console reporter names a case only when it
// fails). tests/mpi/meson.build selects it: --reporters=console,progress.
class ProgressReporter : public doctest::IReporter {
 public:
  explicit ProgressReporter(const doctest::ContextOptions& options) : out_(*options.cout) {}

  void test_case_start(const doctest::TestCaseData& data) override {
    name_ = data.m_name;
    out_ << "[progress] start: " << name_ << std::endl;
  }
  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    out_ << "[progress] " << (stats.testCaseSuccess ? "passed" : "FAILED") << " in " << stats.seconds
         << " s: " << name_ << std::endl;
  }

  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

 private:
  std::ostream& out_;
  const char* name_ = "";
};

}  // namespace

DOCTEST_REGISTER_REPORTER("progress", 1, ProgressReporter);

int main(int argc, char** argv) {
  // Small pieces, so the 64 MiB payload test goes through the multi-piece path.
  procpool::mpi::RuntimeOptions options;
  options.max_message = std::size_t{4} << 20;
  procpool::mpi::Runtime mpi(argc, argv, options);
  doctest::Context context(argc, argv);
  return context.run();
}
