#include "push.hpp"

#include "vmlat/exit_codes.hpp"

#include <prometheus/collectable.h>
#include <prometheus/gateway.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <thread>

#include "base64.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/process.hpp"
#include "vmlat/units.hpp"

namespace vmlat::exporter {

namespace {

std::atomic<int> g_inflight{0};

class StaticCollectable final : public prometheus::Collectable {
 public:
  explicit StaticCollectable(std::vector<prometheus::MetricFamily> families) : families_(std::move(families)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return families_; }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

std::string describe_code(int code) {
  if (code == -1000) return "exception in the HTTP client";
  if (code < 0) return "connection failed (curl error " + std::to_string(-code) + ")";
  return "HTTP " + std::to_string(code);
}

}  // namespace

std::string parse_push_url(const std::string& url, ParsedUrl& out) {
  std::string scheme;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    scheme = "http://";
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    scheme = "https://";
    rest = url.substr(8);
  } else {
    return "the Pushgateway URL must start with http:// or https://, got '" + url + "'";
  }
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
  if (authority.empty()) return "no host in the Pushgateway URL '" + url + "'";
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    out.host = scheme + authority.substr(0, colon);
    out.port = authority.substr(colon + 1);
    if (out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos)
      return "bad port in the Pushgateway URL '" + url + "'";
  } else {
    out.host = scheme + authority;
    out.port = scheme == "https://" ? "443" : "80";
  }
  return {};
}

std::pair<std::string, std::string> encode_grouping_label(const std::string& name, const std::string& value) {
  bool plain = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '~';
  });
  // "." and ".." are path segments a client or proxy may resolve away.
  if (value == "." || value == "..") plain = false;
  if (plain) return {name, value};
  return {name + "@base64", value.empty() ? std::string("=") : base64(value, true)};
}

PushResult push_families(const PushOptions& options, const LabelList& grouping,
                         std::vector<prometheus::MetricFamily> families) {
  PushResult result;
  ParsedUrl url;
  if (auto why = parse_push_url(options.url, url); !why.empty()) {
    result.error = why;
    return result;
  }
  prometheus::Labels labels;
  for (const auto& [k, v] : grouping) labels.insert(encode_grouping_label(k, v));
  auto payload = std::make_shared<StaticCollectable>(std::move(families));
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + options.budget;
  auto backoff = std::chrono::milliseconds(500);
  for (;;) {
    ++result.attempts;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    auto timeout = std::max(std::chrono::milliseconds(100), std::min(options.attempt_timeout, left));
    timeout = std::chrono::milliseconds((timeout.count() + 50) / 100 * 100);  // readable in messages
    auto done = std::make_shared<std::promise<int>>();
    auto answer = done->get_future();
    ++g_inflight;
    // One Gateway per attempt: an abandoned attempt keeps its own.
    std::thread([url, labels, job = options.job, payload, done] {
      int code = -1000;
      try {
        prometheus::Gateway gateway(url.host, url.port + url.prefix, job, labels);
        gateway.RegisterCollectable(payload);
        // prometheus-cpp 1.0.x: PushAdd() sends PUT (replace the whole group),
        // Push() sends POST (keeps metric names not in the body). We want the
        // group to be exactly this cell's metrics; the integration test checks it.
        code = gateway.PushAdd();
      } catch (...) {
      }
      done->set_value(code);
      --g_inflight;
    }).detach();
    int code;
    if (answer.wait_for(timeout) == std::future_status::ready) {
      code = answer.get();
      if (code >= 200 && code < 300) {
        result.ok = true;
        result.error.clear();
        return result;
      }
      result.error = describe_code(code);
      if (code >= 400 && code < 500) return result;  // the payload or URL is wrong: retrying will not help
    } else {
      result.error = "no answer within " + format_duration(timeout);
    }
    auto now = std::chrono::steady_clock::now();
    if (now + backoff >= end || cancel_requested()) return result;
    if (options.max_attempts > 0 && result.attempts >= options.max_attempts) return result;
    // Sleep in small steps so that SIGINT stops the retries promptly.
    auto wake = now + backoff;
    while (std::chrono::steady_clock::now() < wake && !cancel_requested())
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (cancel_requested()) return result;
    backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
  }
}

int abandoned_pushes() { return g_inflight.load(); }

void finish_process(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  if (g_inflight.load() > 0) {
    kill_all_children();
    ::_exit(code);
  }
  std::exit(code);
}

std::filesystem::path write_textfile(const std::filesystem::path& dir, const json& run, const std::string& text) {
  std::string plan = run.contains("plan") ? run["plan"].value("name", std::string("plan")) : std::string("plan");
  std::string host = "local";
  if (run.contains("hosts") && run["hosts"].is_object() && !run["hosts"].empty()) host = run["hosts"].begin().key();
  auto clean = [](std::string s) {
    for (char& c : s)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) c = '_';
    return s;
  };
  std::filesystem::create_directories(dir);
  auto path = dir / ("vmlat_" + clean(plan) + "_" + clean(host) + ".prom");
  write_file_atomic(path, text);
  return path;
}

bool RunExporter::push_cell(const json& run, const json& cell_result) {
  PushOptions opts = *push_;
  if (push_broken_) {
    opts.attempt_timeout = std::min(opts.attempt_timeout, std::chrono::milliseconds(5000));
    opts.budget = std::min(opts.budget, opts.attempt_timeout);
    opts.max_attempts = 1;
  }
  MetricSet set;
  add_cell_metrics(set, run, cell_result);
  auto key = grouping_key(run, cell_result);
  auto r = push_families(opts, key, set.take());
  std::string id = key.size() > 2 ? key[2].second : "?";
  if (!r.ok) {
    failed_ = true;
    push_broken_ = true;
    err_ << "vmlat: push of cell " << id << " to " << opts.url << " failed after " << r.attempts << " attempt"
         << (r.attempts == 1 ? "" : "s") << ": " << r.error << "\n";
    if (std::find(unpushed_.begin(), unpushed_.end(), id) == unpushed_.end()) unpushed_.push_back(id);
  } else {
    unpushed_.erase(std::remove(unpushed_.begin(), unpushed_.end(), id), unpushed_.end());
  }
  return r.ok;
}

void RunExporter::cell_done(const json& run, const json& cell_result) {
  try {
    if (push_) push_cell(run, cell_result);
    if (textfile_dir_) {
      // The cells so far; rewritten after every cell, final at the end of the run.
      cells_so_far_.push_back(cell_result);
      MetricSet set;
      for (const auto& c : cells_so_far_) add_cell_metrics(set, run, c);
      write_textfile(*textfile_dir_, run, to_text(set.families()));
    }
  } catch (const std::exception& e) {
    failed_ = true;
    err_ << "vmlat: metrics export: " << e.what() << "\n";
  }
}

int RunExporter::run_done(int code, const json& run, const std::vector<json>& cell_results,
                          const std::string& run_dir) {
  bool push_failed = false, other_failed = false;
  try {
    if (push_) {
      unpushed_.clear();
      bool gave_up = false;
      for (const auto& c : cell_results) {
        if (gave_up) {
          unpushed_.push_back(c.contains("cell") ? c["cell"].value("id", std::string("?")) : "?");
          continue;
        }
        // Once the Pushgateway is known to be down, one failed attempt is enough.
        if (!push_cell(run, c) && push_broken_) gave_up = true;
      }
      push_failed = !unpushed_.empty();
    }
    if (textfile_dir_) {
      MetricSet set;
      for (const auto& c : cell_results) add_cell_metrics(set, run, c);
      try {
        auto path = write_textfile(*textfile_dir_, run, to_text(set.families()));
        (void)path;
      } catch (const std::exception& e) {
        other_failed = true;
        err_ << "vmlat: cannot write the metrics textfile in " << textfile_dir_->string() << ": " << e.what() << "\n";
      }
    }
  } catch (const std::exception& e) {
    other_failed = true;
    err_ << "vmlat: metrics export: " << e.what() << "\n";
  }
  // Failures during the run are healed if the final push of every cell got through.
  failed_ = push_failed || other_failed;
  if (push_ && !push_failed && !cell_results.empty())
    err_ << "vmlat: metrics of " << cell_results.size() << " cell" << (cell_results.size() == 1 ? "" : "s")
         << " pushed to " << push_->url << "\n";
  if (push_failed) {
    err_ << "vmlat: export failed: " << unpushed_.size() << " of " << cell_results.size() << " cell"
         << (cell_results.size() == 1 ? "" : "s") << " not pushed to " << push_->url
         << "; the results on disk are complete.\n"
         << "vmlat: push them later with: vmlat push " << run_dir << " --url " << push_->url << "\n";
  }
  // Only a pass becomes export_failed: a gate failure (1), an infrastructure
  // error (3) or an interrupt (130) keeps its own code.
  if (failed_ && code == exit_code::pass) return exit_code::export_failed;
  return code;
}

}  // namespace vmlat::exporter
