#pragma once

#include <stdexcept>
#include <string>

namespace xlhost::core {

// An error a user can act on: the message names the file, key or value at fault and
// what was expected. The host prints it as one line (or a short list) and exits non-zero.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace xlhost::core
