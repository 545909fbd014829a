// `xlhost exp serve`: what the dashboard answers, through the HTTP server it runs on.
// The page itself is driven in Chromium by tests/python/dashboard_browser.py.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>
#include <tuple>

#include "http_get.hpp"
#include "test_support.hpp"
#include "xlhost/core/experiments/dashboard.hpp"
#include "xlhost/core/experiments/memory_usage_file.hpp"
#include "xlhost/core/http/http_server.hpp"
#include "xlhost/core/util/json.hpp"

using namespace xlhost;
namespace fs = std::filesystem;

namespace {

// A dashboard over dir/out with a page of its own and Chart.js from a file beside it.
core::Dashboard dashboard_in(const test::TempDir& dir) {
  fs::create_directories(dir / "out");
  test::write_text(dir / "chart.js", "/* chart */");
  core::Dashboard dashboard;
  dashboard.out_dirs = {dir / "out"};
  dashboard.page = "<html>page</html>";
  dashboard.scripts = {{"/chart.js", dir / "chart.js"}, {"/marked.js", dir / "missing.js"}};
  return dashboard;  // no inspect, no token
}

std::string get(const core::Dashboard& d, const std::string& target, const std::string& method = "GET") {
  return core::answer_dashboard(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", d);
}

int status_of(const std::string& response) { return std::stoi(response.substr(9, 3)); }

}  // namespace

TEST(Dashboard, ServesThePageAndRefusesWhatItShouldNot) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  EXPECT_EQ(test::body_of(get(d, "/")), "<html>page</html>");
  EXPECT_EQ(test::body_of(get(d, "/chart.js")), "/* chart */");
  EXPECT_EQ(status_of(get(d, "/marked.js")), 404) << "a library that is not installed";
  EXPECT_EQ(status_of(get(d, "/nothing")), 404);
  EXPECT_EQ(status_of(get(d, "/api/runs", "POST")), 405);
  EXPECT_EQ(status_of(get(d, "/api/runs", "DELETE")), 405);
  for (const char* target : {"/api/run?id=..", "/api/run?id=%2e%2e", "/api/curves?id=../../etc", "/api/run?id=a/b",
                             "/api/run?id=", "/api/compare?ids=a,..", "/api/run?id=%zz"})
    EXPECT_EQ(status_of(get(d, target)), 400) << target;
  EXPECT_EQ(status_of(get(d, "/../../etc/passwd")), 404) << "paths name routes, never files";
  EXPECT_EQ(status_of(get(d, "/api/run?id=missing")), 404);
  const auto headers = get(d, "/api/runs", "HEAD");
  EXPECT_EQ(status_of(headers), 200);
  EXPECT_EQ(test::body_of(headers), "") << "HEAD has no body";
}

TEST(Dashboard, BrokenRunFoldersAreListedWithTheirProblem) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/broken");
  test::write_text(dir / "out/broken/record.json", "{\"schema\": 2, \"experiment\": ");
  fs::create_directories(dir / "out/not_a_run");  // no record, no train.log: not listed
  const auto body = test::body_of(get(d, "/api/runs"));
  EXPECT_NE(body.find("\"id\":\"broken\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"status\":\"broken\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"problem\":"), std::string::npos) << body;
  EXPECT_EQ(body.find("not_a_run"), std::string::npos) << body;
}

// Issue 28, defects 1 and 2: a link loop among the runs aborted `exp serve`; links to files
// outside the run folder were served. Listed and answered now, nothing outside is read.
TEST(Dashboard, LinksOutOfARunFolderOrInLoopsAreNotFollowed) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  test::write_text(dir / "secret.txt", "SECRET-CONTENTS\n");
  fs::create_symlink("selfloop", dir / "out/selfloop");
  fs::create_directories(dir / "out/run1");
  fs::create_symlink(dir / "secret.txt", dir / "out/run1/record.json");
  fs::create_symlink(dir / "secret.txt", dir / "out/run1/samples.txt");
  fs::create_directories(dir / "out/looped");
  fs::create_symlink("train.log", dir / "out/looped/train.log");
  fs::create_directories(dir / "out/grp/seeds");  // a seed group whose sub-run links back to the group
  test::write_text(dir / "out/grp/record.json",
                   R"({"status": "completed", "experiment": {"id": "grp"}, "versions": {"plugin": {}}, "hyperparameters": {}})");
  fs::create_symlink("..", dir / "out/grp/seeds/grp-seed1");
  for (const char* target : {"/api/runs", "/api/run?id=run1", "/api/curves?id=run1", "/api/run?id=looped",
                             "/api/curves?id=looped", "/api/run?id=selfloop"}) {
    std::string answer;
    try {
      answer = get(d, target);
    } catch (const std::exception& e) {
      ADD_FAILURE() << target << ": " << e.what();
      continue;
    }
    EXPECT_EQ(answer.find("SECRET"), std::string::npos) << target << ": " << answer;
    if (status_of(answer) == 200 && std::string(target) != "/api/run?id=selfloop") {
      rapidjson::Document doc;
      EXPECT_FALSE(core::parse_json_into(doc, test::body_of(answer))) << target;
    }
  }
  const auto runs = test::body_of(get(d, "/api/runs"));
  EXPECT_NE(runs.find("\"id\":\"run1\""), std::string::npos) << runs;
  EXPECT_NE(runs.find("leads outside the run folder"), std::string::npos) << runs;
}

// Issue 28, defect 3: a FIFO as train.log wedged the dashboard (the read blocked for
// ever); now it is refused at once, with the reason. Asked on a thread, so that the old behaviour fails the
// test instead of hanging it (the FIFO is then opened for writing to let the read end).
TEST(Dashboard, AFifoAsTrainLogDoesNotBlock) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/fifo");
  const std::string fifo = dir / "out/fifo/train.log";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  std::promise<std::string> promise;
  auto answer = promise.get_future();
  std::thread asker([&] { promise.set_value(get(d, "/api/curves?id=fifo")); });
  const bool answered = answer.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!answered) close(open(fifo.c_str(), O_WRONLY | O_NONBLOCK));
  asker.join();
  EXPECT_TRUE(answered) << "no answer in 10 s";
  const auto response = answer.get();
  EXPECT_EQ(status_of(response), 404);
  EXPECT_NE(test::body_of(response).find("train.log is not a regular file"), std::string::npos) << response;
}

// Issue 28, defect 3: /dev/zero as train.log grew /api/curves to 21 GB; it is not a
// regular file, so it is not read.
TEST(Dashboard, ADeviceAsTrainLogIsNotRead) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/zero");
  fs::create_symlink("/dev/zero", dir / "out/zero/train.log");
  const auto answer = get(d, "/api/curves?id=zero");
  EXPECT_LT(answer.size(), 4096u);
  EXPECT_NE(test::body_of(answer).find("leads outside the run folder (to /dev/zero); not read"), std::string::npos) << answer;
}

// Issue 28, defect 4: a rate so small that the time since the line before overflows
// (tokens_per_s 1e-320) wrote `"time_s":[,]`; the curves stay valid JSON whatever a
// train.log holds.
TEST(Dashboard, CurvesAreValidJsonForAnyLoggedRate) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/odd");
  std::ofstream log(dir / "out/odd/train.log");
  for (const char* rate : {"1e-320", "1000", "0", "-5"})
    log << "{\"step\":1,\"total_steps\":4,\"loss\":2.5,\"lr\":0.001,\"grad_norm\":1,\"tokens\":100,\"tokens_per_s\":" << rate
        << ",\"step_s\":0.1}\n";
  log.close();
  const auto body = test::body_of(get(d, "/api/curves?id=odd"));
  rapidjson::Document doc;
  const auto problem = core::parse_json_into(doc, body);
  EXPECT_FALSE(problem) << problem.reason << ": " << body;
  EXPECT_NE(body.find("\"time_s\":[0.0,"), std::string::npos) << body;
}

TEST(Dashboard, CurvesOfLongRunsAreDecimated) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/long");
  std::ofstream log(dir / "out/long/train.log");
  for (int step = 1; step <= 5000; ++step)
    log << "{\"step\":" << step << ",\"total_steps\":5000,\"loss\":" << 5.0 / step << ",\"lr\":0.001,\"grad_norm\":1,"
        << "\"tokens\":" << step * 100 << ",\"tokens_per_s\":1000,\"step_s\":0.1}\n";
  log.close();
  const auto body = test::body_of(get(d, "/api/curves?id=long"));
  const auto steps = body.substr(0, body.find(']'));
  const auto points = std::count(steps.begin(), steps.end(), ',') + 1;
  EXPECT_LE(points, 2001) << "at most 2,000 points and the last";
  EXPECT_GE(points, 1000);
  EXPECT_NE(steps.find("5000.0"), std::string::npos) << "the last step is kept";
  EXPECT_NE(body.find("\"time_s\":[0.1,"), std::string::npos) << "100 tokens at 1000 tokens/s: 0.1 s per step";
}

TEST(Dashboard, ComparesRunsFromEveryOutFolder) {
  test::TempDir dir;
  auto d = dashboard_in(dir);
  d.out_dirs.push_back(dir / "myexp/out");
  for (const auto& [out, id] : {std::pair{dir / "out", "a"}, {dir / "myexp/out", "b"}}) {
    fs::create_directories(fs::path(out) / id);
    test::write_text(fs::path(out) / id / "record.json",
                     std::string(R"({"schema": 2, "status": "completed", "experiment": {"id": ")") + id +
                         R"("}, "versions": {"plugin": {"name": "p", "version": "1"}}, "hyperparameters": {}, "results": {"steps": 1}})");
  }
  const auto answer = get(d, "/api/compare?ids=a,b");
  ASSERT_EQ(status_of(answer), 200) << answer;
  EXPECT_NE(test::body_of(answer).find("myexp/out"), std::string::npos) << "the folder of each run is shown";
}

// Issue 32: the compare view's table as JSON, with the best result's column.
TEST(Dashboard, ComparisonAsJsonForTheTable) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  for (const auto& [id, lr, loss] : {std::tuple{"a", "0.001", "2.5"}, {"b", "0.003", "2.25"}}) {
    const auto run = dir / ("out/" + std::string(id));
    fs::create_directories(run);
    test::write_text(run + "/record.json",
                     std::string(R"({"schema": 2, "status": "completed", "experiment": {"id": ")") + id +
                         R"("}, "versions": {"plugin": {"name": "p", "version": "1"}}, "hyperparameters": {"train": {"lr": )" + lr +
                         R"(}}, "results": {"steps": 1, "val_loss": )" + loss + "}}");
  }
  const auto body = test::body_of(get(d, "/api/compare?ids=a,b&format=json"));
  rapidjson::Document doc;
  ASSERT_FALSE(core::parse_json_into(doc, body)) << body;
  ASSERT_TRUE(doc.IsObject() && doc["differences"].IsArray() && doc["results"].IsArray()) << body;
  EXPECT_EQ(doc["ids"].Size(), 2u);
  bool lr_row = false, best = false;
  for (const auto& row : doc["differences"].GetArray())
    lr_row |= std::string(row["name"].GetString()) == "train.lr" && std::string(row["values"][1].GetString()) == "0.003";
  for (const auto& row : doc["results"].GetArray())
    best |= std::string(row["name"].GetString()).find("val loss") != std::string::npos && row["best"].GetInt() == 1;
  EXPECT_TRUE(lr_row) << body;
  EXPECT_TRUE(best) << "the lower validation loss is the best: " << body;
}

// Issue 32: a running run's last logged step stands in for its results; a seed group lists
// its sub-runs, whose curves are served by their id; the system figures are curves too.
TEST(Dashboard, LiveValuesSeedSubRunsAndSystemCurves) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  const std::string line = R"({"step":7,"total_steps":9,"loss":2.5,"lr":0.001,"grad_norm":1,"tokens":700,"tokens_per_s":1234,)"
                           R"("step_s":0.1,"data_s":0.01,"cpu_percent":180,"rss_mib":321})";
  const std::string record = R"({"schema": 2, "status": "running", "experiment": {"id": "g", "pid": )" +
                             std::to_string(getpid()) + R"(, "host": "elsewhere"}, )"
                             R"("versions": {"plugin": {"name": "p", "version": "1"}}, "hyperparameters": {}})";
  for (const auto& folder : {dir / "out/g", dir / "out/g/seeds/g-seed1"}) {
    fs::create_directories(folder);
    test::write_text(folder + "/record.json", record);
  }
  test::write_text(dir / "out/g/seeds/g-seed1/train.log", line + "\n");
  const auto runs = test::body_of(get(d, "/api/runs"));
  rapidjson::Document doc;
  ASSERT_FALSE(core::parse_json_into(doc, runs)) << runs;
  ASSERT_EQ(doc["runs"].Size(), 1u) << "sub-runs are listed inside their group only: " << runs;
  const auto& group = doc["runs"][0];
  ASSERT_EQ(group["seed_runs"].Size(), 1u) << runs;
  const auto& seed = group["seed_runs"][0];
  EXPECT_STREQ(seed["id"].GetString(), "g-seed1");
  EXPECT_TRUE(seed["live"].GetBool()) << runs;
  EXPECT_EQ(seed["results"]["steps"].GetDouble(), 7);
  EXPECT_EQ(seed["results"]["final_loss"].GetDouble(), 2.5);
  EXPECT_EQ(seed["results"]["tokens_per_second"].GetDouble(), 1234);
  EXPECT_FALSE(group["live"].GetBool()) << "a group has no train.log of its own";
  const auto curves = test::body_of(get(d, "/api/curves?id=g-seed1"));
  for (const char* column : {"\"cpu_percent\":[180.0]", "\"rss_mib\":[321.0]", "\"data_s\":[0.01]", "\"tokens\":[700.0]"})
    EXPECT_NE(curves.find(column), std::string::npos) << column << " in " << curves;
  EXPECT_EQ(curves.find("gpu_memory_mib"), std::string::npos) << "no GPU column for a run without one";
  EXPECT_EQ(status_of(get(d, "/api/curves?id=h-seed1")), 404) << "no such group";
}

// Issue 32: a run's tags and note go into its folder, only from a page that holds the server's token.
TEST(Dashboard, NotesAreSavedOnlyWithTheServersToken) {
  test::TempDir dir;
  auto d = dashboard_in(dir);
  d.token = "secret-token";
  fs::create_directories(dir / "out/a");
  test::write_text(dir / "out/a/record.json",
                   R"({"schema": 2, "status": "completed", "experiment": {"id": "a"}, "versions": {"plugin": {"name": "p", "version": "1"}}, "hyperparameters": {}, "results": {"steps": 1}})");
  auto post = [&](const std::string& target, const std::string& token, const std::string& body) {
    return core::answer_dashboard("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                                      (token.empty() ? "" : "\r\nX-Xlhost-Token: " + token) + "\r\n\r\n" + body,
                                  d);
  };
  const std::string body = R"({"tags": ["baseline", "lr sweep"], "note": "loss spikes at step 40"})";
  EXPECT_EQ(status_of(post("/api/notes?id=a", "", body)), 403) << "no token";
  EXPECT_EQ(status_of(post("/api/notes?id=a", "guess", body)), 403) << "a wrong token";
  EXPECT_FALSE(fs::exists(dir / "out/a/notes.json"));
  EXPECT_EQ(status_of(post("/api/notes?id=..", "secret-token", body)), 400);
  EXPECT_EQ(status_of(post("/api/notes?id=b", "secret-token", body)), 404);
  EXPECT_EQ(status_of(post("/api/notes?id=a", "secret-token", R"({"tags": [7], "note": ""})")), 400);
  EXPECT_EQ(status_of(post("/api/runs", "secret-token", body)), 405);
  ASSERT_EQ(status_of(post("/api/notes?id=a", "secret-token", body)), 200);
  const auto runs = test::body_of(get(d, "/api/runs"));
  EXPECT_NE(runs.find(R"("tags":["baseline","lr sweep"],"note":"loss spikes at step 40")"), std::string::npos) << runs;
  EXPECT_NE(test::body_of(get(d, "/")).find("<html>page</html>"), std::string::npos);
}

TEST(Dashboard, TheServerRefusesHugeHeadersAndOtherMethods) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  core::http::Server server(core::http::parse_listen_address("127.0.0.1:0", "test"), "test",
                            [&d](const std::string& head) { return core::answer_dashboard(head, d); });
  EXPECT_EQ(test::http_get(server.port(), "/api/runs").rfind("HTTP/1.1 200", 0), 0u);
  const std::string huge = "GET / HTTP/1.1\r\nX-Padding: " + std::string(40000, 'a') + "\r\n\r\n";
  EXPECT_EQ(test::http_exchange(server.port(), huge).rfind("HTTP/1.1 431", 0), 0u);
  EXPECT_EQ(test::http_exchange(server.port(), "POST /api/runs HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").rfind("HTTP/1.1 405", 0), 0u);
}

// Found by fuzz_run_folder: records out of step order overflowed the memory page's heatmap,
// and a header naming a billion rows made it allocate gigabytes.
TEST(Dashboard, MemoryPageOfAnOddUsageFileIsAnsweredNotACrash) {
  test::TempDir dir;
  const auto d = dashboard_in(dir);
  fs::create_directories(dir / "out/odd");
  core::append_memory_usage(dir / "out/odd/memory_usage.bin", 1, 4, {{5, 0, {{1, 2}}}, {3, 0, {{2, 7}}}});
  const auto answer = get(d, "/api/memory?id=odd");
  ASSERT_EQ(status_of(answer), 200) << answer;
  rapidjson::Document doc;
  EXPECT_FALSE(core::parse_json_into(doc, test::body_of(answer)));
  EXPECT_EQ(doc["never_read"].GetInt64(), 2);
  EXPECT_EQ(doc["columns"].Size(), 2u);

  fs::create_directories(dir / "out/huge");
  core::append_memory_usage(dir / "out/huge/memory_usage.bin", 1, uint64_t{1} << 30, {});
  const auto huge = get(d, "/api/memory?id=huge");
  EXPECT_EQ(status_of(huge), 404);
  EXPECT_NE(huge.find("the memory page shows"), std::string::npos) << huge;
}
