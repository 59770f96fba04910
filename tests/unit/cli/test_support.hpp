// Runs cli::parse on an argument list (argv[0] added) and captures what it
// prints on stdout and stderr.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/cli.hpp"

namespace cf::cli::test {

struct Outcome {
  std::optional<Config> config;
  int exit_code = 0;
  std::string out, err;
};

inline Outcome run(const std::vector<std::string>& args) {
  std::vector<const char*> argv{"childflow"};
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  Parsed p = parse(int(argv.size() - 1), argv.data());
  std::fflush(nullptr);
  Outcome o;
  o.err = ::testing::internal::GetCapturedStderr();
  o.out = ::testing::internal::GetCapturedStdout();
  o.config = std::move(p.config);
  o.exit_code = p.exit_code;
  return o;
}

}  // namespace cf::cli::test
