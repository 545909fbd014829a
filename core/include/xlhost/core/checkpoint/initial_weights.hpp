// `--init-from`: a fresh run's weights from an xlhost checkpoint, a Hugging Face folder, a
// PyTorch state dict or a safetensors file (weights only: the optimizer and the schedule
// start afresh).
#pragma once

#include <string>

#include "xlhost/core/checkpoint/weights_origin.hpp"
#include "xlhost/sdk/model.hpp"

namespace xlhost::core {

// UserError listing every missing, unexpected or mis-shaped tensor, or naming the file
// that cannot be read.
void load_initial_weights(sdk::Model& model, const WeightsOrigin& origin, const std::string& plugin_name);

// "" when the weights were trained with `tokenizer` (data.tokenizer) or nothing says which
// they were trained with (a .pth); else a warning naming both: ids would mean other text.
std::string tokenizer_mismatch(const WeightsOrigin& origin, const std::string& tokenizer);

}  // namespace xlhost::core
