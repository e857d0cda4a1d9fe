#pragma once
// FUZZ_CHECK(cond, what): an invariant of the code under test. A failure prints what was expected and aborts,
// so libFuzzer saves the input as a crash.
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                                       \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      std::fprintf(stderr, "invariant failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, what, #cond); \
      std::abort();                                                                                  \
    }                                                                                                \
  } while (0)
