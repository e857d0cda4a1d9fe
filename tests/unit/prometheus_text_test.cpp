#include "common/prometheus_text.hpp"

#include <gtest/gtest.h>

namespace mediagate {
namespace {

TEST(MetricsText, CounterHasHelpTypeAndValue) {
  std::string out;
  append_metric(out, "x_total", "counter", "Things counted.", 42);
  EXPECT_EQ(out, "# HELP x_total Things counted.\n# TYPE x_total counter\nx_total 42\n");
}

TEST(MetricsText, AppendsAfterWhatIsThere) {
  std::string out = "a 1\n";
  append_metric(out, "g", "gauge", "A gauge.", 0);
  append_metric(out, "big", "counter", "Largest value.", 18446744073709551615ull);
  EXPECT_EQ(out,
            "a 1\n# HELP g A gauge.\n# TYPE g gauge\ng 0\n"
            "# HELP big Largest value.\n# TYPE big counter\nbig 18446744073709551615\n");
}

}  // namespace
}  // namespace mediagate
