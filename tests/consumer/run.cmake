# ctest driver for the consumer project: install dbstep from BUILD_DIR into a temporary prefix,
# configure and build tests/consumer against it, run it twice on a new database, check the output.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P run.cmake
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(f include/dbstep/dbstep/dbstep.hpp include/dbstep/core/migrator.hpp bin/dbstep
          lib/cmake/dbstep/dbstepConfig.cmake lib/cmake/dbstep/DbstepEmbed.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "the install has no ${f}")
  endif()
endforeach()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" -G Ninja
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("${WORK_DIR}/build/consumer" "${WORK_DIR}/app.db")
if(NOT out MATCHES "applied 2 migration\\(s\\), now at version 2")
  message(FATAL_ERROR "unexpected output: ${out}")
endif()
run("${WORK_DIR}/build/consumer" "${WORK_DIR}/app.db")
if(NOT out MATCHES "applied 0 migration\\(s\\), now at version 2")
  message(FATAL_ERROR "unexpected output on the second run: ${out}")
endif()
# The installed CLI reads the same database, given the consumer's migrations folder (a database
# named without a source is refused since issue 11).
run("${prefix}/bin/dbstep" -s "${SOURCE_DIR}/migrations" -d "sqlite://${WORK_DIR}/app.db" version)
if(NOT out STREQUAL "2\n")
  message(FATAL_ERROR "the installed dbstep reads version '${out}'")
endif()
message(STATUS "consumer project built against the installed package and migrated: ok")
file(REMOVE_RECURSE "${WORK_DIR}")
