// FUZZ_CHECK(cond): the fuzzers' assertion. assert() is compiled out in the
// RelWithDebInfo fuzz build (NDEBUG), and a trap is what libFuzzer records
// as a crash. The message names the broken invariant, which the trap's
// stack alone would not.

#ifndef COWBLK_TESTS_FUZZ_FUZZ_CHECK_H_
#define COWBLK_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>

#define FUZZ_CHECK(cond)                                                \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, \
                   __LINE__, #cond);                                    \
      __builtin_trap();                                                 \
    }                                                                   \
  } while (0)

#endif  // COWBLK_TESTS_FUZZ_FUZZ_CHECK_H_
