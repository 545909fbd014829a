#include "xlhost/core/experiments/git_provenance.hpp"

#include <git2.h>

#include <memory>

namespace xlhost::core {

GitState read_git_state(const std::string& path, size_t max_diff_bytes) {
  static const int initialised = git_libgit2_init();
  (void)initialised;
  GitState state;
  git_repository* raw_repo = nullptr;
  if (git_repository_open_ext(&raw_repo, path.c_str(), 0, nullptr) != 0) return state;
  std::unique_ptr<git_repository, void (*)(git_repository*)> repo(raw_repo, git_repository_free);
  state.found = true;
  if (const char* workdir = git_repository_workdir(repo.get())) state.root = workdir;

  git_reference* raw_head = nullptr;
  git_tree* head_tree = nullptr;
  if (git_repository_head(&raw_head, repo.get()) == 0) {
    std::unique_ptr<git_reference, void (*)(git_reference*)> head(raw_head, git_reference_free);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, git_reference_target(head.get()));
    state.commit = hex;
    state.short_commit = state.commit.substr(0, 12);
    state.branch = git_repository_head_detached(repo.get()) ? "HEAD" : git_reference_shorthand(head.get());
    git_commit* commit = nullptr;
    if (git_commit_lookup(&commit, repo.get(), git_reference_target(head.get())) == 0) {
      git_commit_tree(&head_tree, commit);
      git_commit_free(commit);
    }
  }

  git_status_options options = GIT_STATUS_OPTIONS_INIT;
  options.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  options.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
                  GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
  git_status_list* raw_status = nullptr;
  if (git_status_list_new(&raw_status, repo.get(), &options) == 0) {
    std::unique_ptr<git_status_list, void (*)(git_status_list*)> status(raw_status, git_status_list_free);
    for (size_t i = 0; i < git_status_list_entrycount(status.get()); ++i) {
      const git_status_entry* e = git_status_byindex(status.get(), i);
      const git_diff_delta* delta = e->index_to_workdir ? e->index_to_workdir : e->head_to_index;
      if (delta && delta->new_file.path) state.dirty_files.push_back(delta->new_file.path);
    }
  }
  state.dirty = !state.dirty_files.empty();

  git_diff* raw_diff = nullptr;
  git_diff_options diff_options = GIT_DIFF_OPTIONS_INIT;  // untracked files are part of the code that ran
  diff_options.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS | GIT_DIFF_SHOW_UNTRACKED_CONTENT;
  if (git_diff_tree_to_workdir_with_index(&raw_diff, repo.get(), head_tree, &diff_options) == 0) {
    std::unique_ptr<git_diff, void (*)(git_diff*)> diff(raw_diff, git_diff_free);
    git_buf buffer = GIT_BUF_INIT;
    if (git_diff_to_buf(&buffer, diff.get(), GIT_DIFF_FORMAT_PATCH) == 0) {
      state.diff.assign(buffer.ptr, buffer.size);
      if (state.diff.size() > max_diff_bytes) {
        state.diff.resize(max_diff_bytes);
        state.diff_truncated = true;
      }
    }
    git_buf_dispose(&buffer);
  }
  if (head_tree) git_tree_free(head_tree);
  return state;
}

}  // namespace xlhost::core
