# Helpers shared by every folder.

# twincast_add_test(NAME name SOURCES ... LIBS ... [TIMEOUT s] [LABELS ...])
# One GoogleTest executable, registered with ctest as one test carrying a timeout.
# Test binaries find generated fixtures through TWINCAST_FIXTURE_DIR and tools
# through TWINCAST_BIN_DIR.
function(twincast_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main twincast_warnings)
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME ${T_NAME} COMMAND ${T_NAME})
  set_tests_properties(${T_NAME} PROPERTIES
    TIMEOUT ${T_TIMEOUT}
    LABELS "${T_LABELS}"
    ENVIRONMENT "TWINCAST_FIXTURE_DIR=${PROJECT_BINARY_DIR}/fixtures;TWINCAST_BIN_DIR=${PROJECT_BINARY_DIR}/bin;TWINCAST_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
