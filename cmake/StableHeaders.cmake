# fastinfluence_stable_headers(<imported target> <name> <subdirectory>...): point the target's include
# directories that hold the given subdirectories (Eigen/, pybind11/) at copies of those subdirectories
# under ${CMAKE_BINARY_DIR}/stable-headers/<name>, rewritten only where a header's content changed
# (configure_file COPYONLY leaves an unchanged file, and its timestamp, alone), so that a build from a
# new temporary build environment with the same header versions compiles the same commands. Only
# those subdirectories are copied: a system copy whose include directory is /usr/include keeps its
# other headers where they are. See CMakeLists.txt for why.
function(fastinfluence_stable_headers target name)
  get_target_property(_dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(_stable_dirs "")
  set(_index 0)
  foreach(_dir IN LISTS _dirs)
    set(_copy "${CMAKE_BINARY_DIR}/stable-headers/${name}/${_index}")
    set(_copied FALSE)
    foreach(_subdir IN LISTS ARGN)
      if(IS_DIRECTORY "${_dir}/${_subdir}")
        file(GLOB_RECURSE _headers RELATIVE "${_dir}" "${_dir}/${_subdir}/*")
        foreach(_header IN LISTS _headers)
          configure_file("${_dir}/${_header}" "${_copy}/${_header}" COPYONLY)
        endforeach()
        set(_copied TRUE)
      endif()
    endforeach()
    if(_copied)
      list(APPEND _stable_dirs "${_copy}")
    else()
      list(APPEND _stable_dirs "${_dir}")
    endif()
    math(EXPR _index "${_index} + 1")
  endforeach()
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_stable_dirs}")
endfunction()
