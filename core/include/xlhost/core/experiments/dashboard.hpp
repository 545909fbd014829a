// `xlhost exp serve`: a web page over the runs of one or more out folders, and the JSON
// it reads. The answers are a pure function of the request head and the files on disk, so
// they are tested without a socket; http::Server carries them.
//   GET /                    the page (the host's compiled-in dashboard.html)
//   GET /chart.js, /marked.js  Chart.js and marked from Debian (libjs-chart.js, libjs-marked)
//   GET /api/runs            every run: id, status, results (a running run's last logged step),
//                            code version, flattened config, a seed group's sub-runs; a folder
//                            whose record cannot be read is listed with its problem
//   GET /api/curves?id=ID    its train.log as columns (training and system figures, the plugin's
//                            diagnostics), decimated to at most 2,000 points; ID may be a seed's sub-run
//   GET /api/compare?ids=A,B the `exp compare` table; &format=json: its rows as JSON
//   GET /api/run?id=ID       record.json, record.md, samples.txt and the checkpoints
//   GET /api/memory?id=ID    a memory model's bank reads over training and its ablations (memory_page.hpp)
//   GET /api/inspect?id=ID&prompt=TEXT  what the run's model reads for a prompt (when the host gives `inspect`)
//   POST /api/notes?id=ID    {"tags", "note"} into the run folder's notes.json (run_notes.hpp);
//                            only with the header X-Xlhost-Token: the server's token, which only
//                            its own page holds (another site's script can neither read the page
//                            nor send the header without a CORS preflight this server never grants)
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace xlhost::core {

struct Dashboard {
  std::vector<std::string> out_dirs;
  std::string page;                            // the HTML of GET /
  std::map<std::string, std::string> scripts;  // URL path → file: the page's JavaScript libraries
  // GET /api/inspect?id=RUN&prompt=TEXT: a run folder and a prompt → JSON of what its model
  // reads (eval/memory_inspection.hpp), UserError for what cannot be answered. Given by the
  // host, which can load models; empty: the endpoint answers 404.
  std::function<std::string(const std::filesystem::path& run_dir, const std::string& prompt)> inspect;
  // Put into the page where it says __XLHOST_TOKEN__; POST /api/notes needs it. Empty: no writes.
  std::string token;
};

inline constexpr size_t kMaxDashboardPostBytes = 128 << 10;

std::string answer_dashboard(const std::string& request, const Dashboard& dashboard);

}  // namespace xlhost::core
