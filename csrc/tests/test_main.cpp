// A minimal test runner: tests register themselves; each failure prints and the exit code is non-zero.
#include "test_util.hpp"

#include <cstdio>
#include <cstring>
#include <vector>

namespace ectest {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
int failures = 0;
}  // namespace ectest

// Arguments: run only the cases whose name contains one of them (make test-arm's extra CPU model).
int main(int argc, char** argv) {
  int failed_cases = 0, ran = 0;
  for (auto& c : ectest::registry()) {
    bool wanted = argc < 2;
    for (int i = 1; i < argc; ++i) wanted |= std::strstr(c.name, argv[i]) != nullptr;
    if (!wanted) continue;
    ++ran;
    const int before = ectest::failures;
    c.fn();
    const bool ok = ectest::failures == before;
    std::printf("[%s] %s\n", ok ? "PASS" : "FAIL", c.name);
    failed_cases += !ok;
  }
  std::printf("%d passed, %d failed\n", ran - failed_cases, failed_cases);
  return failed_cases == 0 && ran > 0 ? 0 : 1;
}
