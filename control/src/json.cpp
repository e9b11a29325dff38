// Boost.JSON is used header-only: this translation unit holds its implementation for
// every twincast program that links twincast::control.
#include <boost/json/src.hpp>
