// A PyTorch state dict's pickle (data.pkl of a torch.save archive): opcodes that
// StateDictPickle rewrites and measures before LibTorch's unpickler reads them.
#include <caffe2/serialize/inline_container.h>

#include "fuzz_input.hpp"
#include "xlhost/core/checkpoint/torch_state_dict.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = (fuzz::scratch() / "model.pth").string();
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    writer.writeRecord("data.pkl", data, size);
    writer.writeEndOfFile();
  }
  fuzz::refusing_is_fine([&] { xlhost::core::load_torch_state_dict(path); });
  return 0;
}
