// Deliberately broken plugins for the conformance tests: a bigram model that, with
// FUTURE_LEAK, also reads the next token (a one-position future leak), or, with
// DEAD_PARAMETER, owns a parameter that forward never uses.
#include <xlhost/sdk/layers.hpp>
#include <xlhost/sdk/plugin.hpp>

namespace {

using namespace xlhost::sdk;

class Faulty : public Model {
 public:
  explicit Faulty(const ModelConfig& c) {
    embedding = register_module("embedding", TiedEmbedding(c.get_int("vocab_size"), c.get_int("dim")));
#ifdef DEAD_PARAMETER
    unused_scale = register_parameter("unused_scale", torch::ones({c.get_int("dim")}));
#endif
  }
  ForwardResult forward(const torch::Tensor& tokens, DecodeCache*) override {
    auto h = embedding->embed(tokens);
#ifdef FUTURE_LEAK
    // Position t also sees token t+1 (the last position sees nothing extra).
    auto next = torch::cat({h.slice(1, 1), torch::zeros_like(h.slice(1, 0, 1))}, 1);
    h = h + 0.5 * next;
#endif
    return {embedding->logits(h), {}, {}, {}};
  }
  TiedEmbedding embedding{nullptr};
  torch::Tensor unused_scale;
};

PluginDescriptor describe() {
  PluginDescriptor d;
  d.name = TEST_PLUGIN_NAME;
  d.version = "0.0.1";
  d.description = "a deliberately broken model for conformance tests";
  d.schema = {int_key("dim", 16, "width", 1, 4096), int_key("vocab_size", 64, "vocabulary", 2, 1 << 20)};
  return d;
}

Model* create(const ModelConfig& c) { return new Faulty(c); }

}  // namespace

XLHOST_PLUGIN(describe, create)
