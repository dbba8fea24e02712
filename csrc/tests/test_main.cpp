// A minimal test runner: tests register themselves; each failure prints and the exit code is non-zero.
#include "test_util.hpp"

#include <cstdio>
#include <vector>

namespace ectest {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
int failures = 0;
}  // namespace ectest

int main() {
  int failed_cases = 0;
  for (auto& c : ectest::registry()) {
    const int before = ectest::failures;
    c.fn();
    const bool ok = ectest::failures == before;
    std::printf("[%s] %s\n", ok ? "PASS" : "FAIL", c.name);
    failed_cases += !ok;
  }
  std::printf("%zu passed, %d failed\n", ectest::registry().size() - failed_cases, failed_cases);
  return failed_cases == 0 ? 0 : 1;
}
