// libnftables through dlopen. See nft.hpp.
#include "nft/nft.hpp"

#include <dlfcn.h>

#include <fmt/format.h>
#include <optional>
#include <string>

namespace cf::nft {
namespace {

// The soname of the library's ABI this code was built against.
constexpr const char* kSoname = "libnftables.so.1";

Result<Api> load() {
  void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return Error{fmt::format("cannot load {} ({})", kSoname, ::dlerror())};
  Api a{};
  std::string missing;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
    if (!fn) missing += missing.empty() ? name : std::string(", ") + name;
  };
  sym(a.ctx_new, "nft_ctx_new");
  sym(a.ctx_free, "nft_ctx_free");
  sym(a.buffer_output, "nft_ctx_buffer_output");
  sym(a.buffer_error, "nft_ctx_buffer_error");
  sym(a.get_output_buffer, "nft_ctx_get_output_buffer");
  sym(a.get_error_buffer, "nft_ctx_get_error_buffer");
  sym(a.run_cmd_from_buffer, "nft_run_cmd_from_buffer");
  if (!missing.empty()) {
    ::dlclose(h);
    return Error{fmt::format("{} lacks {}: install a libnftables of 0.9.1 or newer", kSoname,
                             missing)};
  }
  return a;  // the handle stays open for the life of the process
}

}  // namespace

Result<const Api*> api() {
  static const Result<Api> loaded = load();
  if (!loaded) return loaded.error();
  return &loaded.value();
}

}  // namespace cf::nft
