// The dashboard's read path (exp serve) over one run folder made from the input: its
// record.json, train.log, crash.txt, samples.txt, memory_usage.bin and ablations.json (the
// input after its first byte, split at "\n--\n"), and, as the first byte says, a symlink loop, a link out of the folder or a
// FIFO in place of one of them. Every request must be answered, and every JSON answer
// with status 200 must parse.
#include <rapidjson/document.h>
#include <sys/stat.h>

#include <array>
#include <cstdlib>

#include "fuzz_input.hpp"
#include "xlhost/core/experiments/dashboard.hpp"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path out = fuzz::scratch() / "out", run = out / "r";
  fs::remove_all(out);
  fs::create_directories(run);
  const uint8_t mode = size > 0 ? data[0] : 0;
  const std::string input(reinterpret_cast<const char*>(data) + (size > 0 ? 1 : 0), size > 0 ? size - 1 : 0);
  const std::array<const char*, 6> names{"record.json", "train.log",        "crash.txt",
                                         "samples.txt", "memory_usage.bin", "ablations.json"};
  size_t start = 0;
  for (const char* name : names) {
    const size_t end = std::min(input.find("\n--\n", start), input.size());
    std::ofstream(run / name, std::ios::binary) << input.substr(start, end - start);
    start = std::min(end + 4, input.size());
  }
  const fs::path odd = run / names[(mode >> 2) % names.size()];
  switch (mode % 4) {
    case 1: fs::remove(odd), fs::create_symlink(odd.filename(), odd); break;      // a loop
    case 2: fs::remove(odd), fs::create_symlink("/etc/passwd", odd); break;       // out of the folder
    case 3: fs::remove(odd), mkfifo(odd.c_str(), 0600); break;                   // would block a reader
    default: break;
  }
  const xlhost::core::Dashboard dashboard{{out.string()}, "<html></html>", {}};
  for (const char* target : {"/api/runs", "/api/run?id=r", "/api/curves?id=r", "/api/compare?ids=r,r", "/api/memory?id=r"}) {
    const auto answer =
        xlhost::core::answer_dashboard(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n", dashboard);
    const size_t body = answer.find("\r\n\r\n");
    if (answer.rfind("HTTP/1.1 200", 0) != 0 || answer.find("application/json") > body) continue;
    rapidjson::Document doc;
    if (doc.Parse(answer.c_str() + body + 4).HasParseError()) std::abort();  // invalid JSON served
  }
  return 0;
}
