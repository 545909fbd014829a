// Test helper for the interop oracles (tests/python): the logits a checkpoint's model gives
// for a batch of token ids, written as a safetensors file that Python compares with
// transformers' or a reference PyTorch model's.
//   model_logits CHECKPOINT "1,2,3;4,5,6" OUT.safetensors   (rows of equal length)
#include <iostream>
#include <sstream>

#include "xlhost/core/checkpoint/safetensors.hpp"
#include "xlhost/core/eval/trained_model.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: model_logits CHECKPOINT IDS OUT.safetensors\n";
    return 2;
  }
  try {
    std::vector<int64_t> ids;
    int64_t rows = 0;
    std::istringstream rows_text(argv[2]);
    for (std::string row; std::getline(rows_text, row, ';'); ++rows) {
      std::istringstream row_text(row);
      for (std::string id; std::getline(row_text, id, ',');) ids.push_back(std::stoll(id));
    }
    auto trained = xlhost::core::load_trained_model(argv[1], "", {});
    torch::NoGradGuard no_grad;
    const auto tokens = torch::tensor(ids, torch::kInt64).view({rows, -1}).to(trained.device);
    const auto logits = trained.model->forward(tokens).logits.to(torch::kCPU, torch::kFloat32);
    xlhost::core::save_safetensors(argv[3], {{"logits", logits}}, {});
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "model_logits: " << e.what() << "\n";
    return 1;
  }
}
