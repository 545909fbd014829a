// How `xlhost run` starts processes and joins ranks: in the background (--detach), under
// --nproc, and as one rank of a data-parallel run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "xlhost/core/config/options.hpp"
#include "xlhost/core/distributed/c10d_communicator.hpp"
#include "xlhost/core/run/run_directory.hpp"

namespace xlhost::host {

// --detach: the same command in a new session, its output in <run_dir>/run.log. Returns
// once the child has written its record (so `exp status` sees it) or has ended.
int run_detached(const std::vector<std::string>& args, const core::RunDirectory& run_dir, const std::string& id);

// `--nproc N`: the same command as N ranks on this machine, started and watched here (not
// through torchrun, whose own failure ends in exit 1 and a Python traceback). Ctrl-C or
// SIGTERM stops every rank once (each saves its checkpoint); when a rank fails, the others
// are stopped and one line says which ended how. Returns 0, or the first failed rank's
// exit code (2 for a rank killed by a signal).
int launch_ranks(const std::vector<std::string>& args, int nproc);

// `args` without `option` and its value (`--option V` or `--option=V`): the command to
// pass on to the runs this one starts.
std::vector<std::string> without_option(const std::vector<std::string>& args, const std::string& option);

// Each rank on a machine serves /metrics on the configured port plus its local rank
// (port 0, any free port, stays 0).
std::string rank_listen_address(const std::string& listen, int local_rank);

// The other ranks of a data-parallel run, when a launcher started this process as one.
std::unique_ptr<core::distributed::C10dCommunicator> join_ranks(const core::Options& config);

}  // namespace xlhost::host
