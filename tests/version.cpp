// PROCPOOL_VERSION_* come from project()'s version in meson.build, which the
// build passes in as PROCPOOL_EXPECTED_VERSION; the umbrella header brings them.
#include <procpool/procpool.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("version - the macros are meson.build's version") {
  CHECK(std::string(PROCPOOL_VERSION_STRING) == PROCPOOL_EXPECTED_VERSION);
  CHECK(std::to_string(PROCPOOL_VERSION_MAJOR) + '.' + std::to_string(PROCPOOL_VERSION_MINOR) + '.' +
            std::to_string(PROCPOOL_VERSION_PATCH) ==
        PROCPOOL_VERSION_STRING);
}
