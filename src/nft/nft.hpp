// libnftables, loaded when first needed.
//
// Only the rootful backend and its doctor checks use nftables, yet linking
// libnftables made every run load it and the five libraries it pulls in
// (libnftnl, libmnl, libxtables, libjansson, libgmp): about 2 ms of every
// start-up on a small VM, mostly their relocations (docs/performance.md,
// "Start-up").
// So the library is opened with dlopen(3) on first use, and its functions
// are reached through the table below. The types come from its header; the
// binary has no link to it.
#pragma once
#include <nftables/libnftables.h>

#include "common/result.hpp"

namespace cf::nft {

// The functions of libnftables childflow calls.
struct Api {
  decltype(&::nft_ctx_new) ctx_new;
  decltype(&::nft_ctx_free) ctx_free;
  decltype(&::nft_ctx_buffer_output) buffer_output;
  decltype(&::nft_ctx_buffer_error) buffer_error;
  decltype(&::nft_ctx_get_output_buffer) get_output_buffer;
  decltype(&::nft_ctx_get_error_buffer) get_error_buffer;
  decltype(&::nft_run_cmd_from_buffer) run_cmd_from_buffer;
};

// The table, loaded once (later calls return the same answer), or an Error
// that says the library is missing. dlopen reads files, so a process that
// confines itself (src/confine/) must call this before lock_down.
Result<const Api*> api();

}  // namespace cf::nft
