// Which code a run used: the git repository around a path, read with libgit2.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xlhost::core {

struct GitState {
  bool found = false;  // false: the path is not inside a git work tree
  std::string root, commit, short_commit, branch;  // branch "HEAD" when detached, "" before the first commit
  bool dirty = false;
  std::vector<std::string> dirty_files;  // modified, staged, deleted or untracked (not ignored)
  std::string diff;                      // uncommitted changes to tracked files against HEAD, as a patch
  bool diff_truncated = false;
};

// Searches upwards from `path`. The patch is cut at max_diff_bytes.
GitState read_git_state(const std::string& path, size_t max_diff_bytes = 1 << 20);

}  // namespace xlhost::core
