// `xlhost eval --task`: the benchmark half of the eval command.
#pragma once

#include "cli.hpp"
#include "xlhost/core/eval/trained_model.hpp"

namespace xlhost::host {

void add_benchmark_options(po::options_description& options);

// Scores vm["task"] on the loaded model, prints and records it; the command's exit code.
int benchmark_eval(const po::variables_map& vm, core::TrainedModel& t);

}  // namespace xlhost::host
