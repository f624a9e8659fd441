// vmlat-guest-agent entry point: option parsing only; see agent.hpp.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "agent.hpp"

namespace {

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: vmlat-guest-agent [options]\n"
               "Serves vmlat's host over a virtio-serial port (found by its name in\n"
               "/sys/class/virtio-ports/*/name), one vmlat frame per message.\n"
               "\n"
               "  --port PATH            use PATH instead: a virtio port device, a tty (set raw),\n"
               "                         or a unix stream socket to connect to (host-side testing)\n"
               "  --name NAME            virtio-serial port name to look for (default %s)\n"
               "  --port-timeout-ms N    wait this long for the port to appear (default 60000)\n"
               "  --no-poweroff          on 'shutdown', exit instead of powering the machine off\n"
               "  --workdir DIR          where child output is captured (default /tmp/vmlat-agent)\n"
               "  --output-cap BYTES     keep at most this much stdout and stderr per process\n"
               "                         (default 4194304; more is flagged *_truncated)\n"
               "  --version              print the agent version\n"
               "  -h, --help             this text\n",
               vmlat::agent::kDefaultPortName);
}

bool parse_number(const char* s, long long min, long long max, long long* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  vmlat::agent::Options opts;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vmlat-guest-agent: %s needs a value\n", name);
        std::exit(64);
      }
      return argv[++i];
    };
    long long n = 0;
    if (a == "--port") {
      opts.port = value("--port");
    } else if (a == "--name") {
      opts.port_name = value("--name");
    } else if (a == "--port-timeout-ms") {
      if (!parse_number(value("--port-timeout-ms"), 0, 86400000, &n)) {
        std::fprintf(stderr, "vmlat-guest-agent: bad --port-timeout-ms\n");
        return 64;
      }
      opts.port_timeout_ms = static_cast<int>(n);
    } else if (a == "--no-poweroff") {
      opts.poweroff = false;
    } else if (a == "--workdir") {
      opts.workdir = value("--workdir");
    } else if (a == "--output-cap") {
      if (!parse_number(value("--output-cap"), 0, 32LL << 20, &n)) {
        std::fprintf(stderr, "vmlat-guest-agent: bad --output-cap (0..33554432)\n");
        return 64;
      }
      opts.output_cap = static_cast<std::size_t>(n);
    } else if (a == "--version") {
      std::printf("vmlat-guest-agent %s\n", vmlat::agent::kAgentVersion);
      return 0;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "vmlat-guest-agent: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 64;
    }
  }
  vmlat::agent::Agent agent(std::move(opts));
  return agent.run();
}
