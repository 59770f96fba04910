# cmake -DSRC=<source dir> -DOUT=<header> -P git_version.cmake
# Writes OUT with CHILDFLOW_GIT, the commit of SRC (empty when SRC is not the
# top of a git checkout, e.g. a tarball unpacked inside a packaging repo).
# Runs at every build; rewrites OUT only when the commit changed.
set(hash "")
execute_process(COMMAND git -C "${SRC}" rev-parse --show-toplevel
  OUTPUT_VARIABLE top OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(rc EQUAL 0)
  file(REAL_PATH "${SRC}" src_real)
  file(REAL_PATH "${top}" top_real)
  if(src_real STREQUAL top_real)
    execute_process(COMMAND git -C "${SRC}" rev-parse --short HEAD
      OUTPUT_VARIABLE hash OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
endif()
file(WRITE "${OUT}.tmp" "#define CHILDFLOW_GIT \"${hash}\"\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
