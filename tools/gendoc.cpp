// gendoc DIR: writes childflow's man page and shell completions, generated
// from the settings table, into DIR (run by the build; installed by
// `cmake --install`): childflow.1, childflow.bash, _childflow (zsh),
// childflow.fish.
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/reference.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: gendoc DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  struct Out {
    const char* name;
    std::string text;
  };
  const Out outs[] = {
      {"childflow.1", cf::cli::man_page()},
      {"childflow.bash", cf::cli::completion(cf::cli::Shell::Bash)},
      {"_childflow", cf::cli::completion(cf::cli::Shell::Zsh)},
      {"childflow.fish", cf::cli::completion(cf::cli::Shell::Fish)},
  };
  for (const Out& o : outs) {
    std::ofstream f(dir + "/" + o.name, std::ios::binary | std::ios::trunc);
    f << o.text;
    if (!f) {
      std::fprintf(stderr, "gendoc: cannot write %s/%s\n", dir.c_str(), o.name);
      return 1;
    }
  }
  return 0;
}
