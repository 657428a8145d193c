# fastinfluence_stable_headers(<imported target> <name>): point the target's include directories at
# copies under ${CMAKE_BINARY_DIR}/stable-headers/<name>, rewritten only where a header's content
# changed (configure_file COPYONLY leaves an unchanged file, and its timestamp, alone), so that
# rebuilding from a new temporary build environment with the same header versions recompiles
# nothing. See CMakeLists.txt for why.
function(fastinfluence_stable_headers target name)
  get_target_property(_dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(_stable_dirs "")
  set(_index 0)
  foreach(_dir IN LISTS _dirs)
    set(_copy "${CMAKE_BINARY_DIR}/stable-headers/${name}/${_index}")
    file(GLOB_RECURSE _headers RELATIVE "${_dir}" "${_dir}/*")
    foreach(_header IN LISTS _headers)
      configure_file("${_dir}/${_header}" "${_copy}/${_header}" COPYONLY)
    endforeach()
    list(APPEND _stable_dirs "${_copy}")
    math(EXPR _index "${_index} + 1")
  endforeach()
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_stable_dirs}")
endfunction()
