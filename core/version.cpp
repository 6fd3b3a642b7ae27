#include "core/version.hpp"

namespace dbstep {

std::string to_string(const OptVersion& v) { return v ? std::to_string(*v) : "none"; }

}  // namespace dbstep
