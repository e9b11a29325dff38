// TcLoss: random packet loss on a link, in the kernel, for the namespace tests: a tc
// classifier (clsact egress hook, direct action) on one veth that drops each packet leaving
// it with a given probability and counts what it passed and dropped. It stands in for
// `tc qdisc ... netem loss N%` on kernels built without sch_netem (this CI machine's:
// Firecracker's 6.18 kernel has cls_bpf and clsact but no netem, fq or gact). The program
// is 17 eBPF instructions, loaded and attached with libbpf (no compiler, no ELF file);
// the counters live in a two-slot array map that the test reads through its fd.
//
// Root only (bpf(2), netlink in the namespace). Header-only.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

#include "dataplane/netns.hpp"

namespace twincast::test {

class TcLoss {
 public:
  // Drops `loss_percent` % (0 < loss_percent < 50) of what leaves `iface` in namespace `ns`.
  TcLoss(std::string ns, std::string iface, double loss_percent) : ns_(std::move(ns)), iface_(std::move(iface)) {
    if (!(loss_percent > 0 && loss_percent < 50)) {
      error_ = "loss_percent must be in (0, 50)";
      return;
    }
    map_fd_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tc_loss_counts", sizeof(std::uint32_t), sizeof(std::uint64_t), 2,
                             nullptr);
    if (map_fd_ < 0) {
      error_ = "bpf_map_create: " + std::string(std::strerror(errno));
      return;
    }
    // A packet is dropped when a random 32-bit number is below the threshold.
    const auto threshold = static_cast<std::uint32_t>(loss_percent / 100.0 * 4294967296.0);
    const auto insns = program(map_fd_, threshold);
    bpf_prog_load_opts load_opts;
    clear_options(load_opts);
    prog_fd_ = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "tc_loss", "Dual MIT/GPL", insns.data(), insns.size(), &load_opts);
    if (prog_fd_ < 0) {
      error_ = "bpf_prog_load: " + std::string(std::strerror(errno));
      return;
    }
    in_namespace([&] {
      const unsigned ifindex = if_nametoindex(iface_.c_str());
      if (ifindex == 0) {
        error_ = "no interface " + iface_ + " in " + ns_;
        return;
      }
      hook_ifindex_ = static_cast<int>(ifindex);
      bpf_tc_hook hook;
      egress_hook(hook);
      const int created = bpf_tc_hook_create(&hook);  // the clsact qdisc
      if (created != 0 && created != -EEXIST) {
        error_ = "bpf_tc_hook_create: " + std::string(std::strerror(-created));
        return;
      }
      hooked_ = true;
      bpf_tc_opts opts;
      clear_options(opts);
      opts.prog_fd = prog_fd_;
      const int attached = bpf_tc_attach(&hook, &opts);
      if (attached != 0) {
        error_ = "bpf_tc_attach: " + std::string(std::strerror(-attached));
        return;
      }
      attached_ = true;
    });
  }
  ~TcLoss() {
    if (hooked_) {
      in_namespace([&] {
        bpf_tc_hook hook;
        egress_hook(hook);
        hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        (void)bpf_tc_hook_destroy(&hook);  // both points: the clsact qdisc goes, its filter with it
      });
    }
    if (prog_fd_ >= 0) ::close(prog_fd_);
    if (map_fd_ >= 0) ::close(map_fd_);
  }
  TcLoss(const TcLoss&) = delete;
  TcLoss& operator=(const TcLoss&) = delete;

  [[nodiscard]] bool ok() const { return attached_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] std::uint64_t passed() const { return count(0); }
  [[nodiscard]] std::uint64_t dropped() const { return count(1); }

 private:
  // libbpf's option structs: zeroed, padding too (libbpf checks that what it does not know
  // is zero), with their size set (LIBBPF_OPTS does this with C extensions clang refuses in
  // C++).
  template <typename T>
  static void clear_options(T& o) {
    std::memset(&o, 0, sizeof o);
    o.sz = sizeof o;
  }
  void egress_hook(bpf_tc_hook& hook) const {
    clear_options(hook);
    hook.ifindex = hook_ifindex_;
    hook.attach_point = BPF_TC_EGRESS;
  }

  // r0 = random; slot, verdict = (r0 < threshold) ? (1, TC_ACT_SHOT) : (0, TC_ACT_OK);
  // counts[slot] += 1 (atomic); return verdict.
  static std::array<bpf_insn, 19> program(int map_fd, std::uint32_t threshold) {
    auto insn = [](std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off, std::int32_t imm) {
      bpf_insn i{};
      i.code = code;
      i.dst_reg = dst & 0xF;
      i.src_reg = src & 0xF;
      i.off = off;
      i.imm = imm;
      return i;
    };
    constexpr std::uint8_t r0 = 0, r1 = 1, r2 = 2, r6 = 6, r7 = 7, r10 = 10;
    return {{
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_prandom_u32),          // 0: r0 = random u32
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r6, 0, 0, 0),                       // 1: slot = 0 (passed)
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r7, 0, 0, TC_ACT_OK),               // 2: verdict
        insn(BPF_LD | BPF_DW | BPF_IMM, r1, 0, 0, static_cast<std::int32_t>(threshold)),  // 3-4: r1 = threshold
        insn(0, 0, 0, 0, 0),
        insn(BPF_JMP | BPF_JGE | BPF_X, r0, r1, 2, 0),                        // 5: r0 >= r1: keep
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r6, 0, 0, 1),                       // 6: slot = 1 (dropped)
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r7, 0, 0, TC_ACT_SHOT),             // 7
        insn(BPF_STX | BPF_MEM | BPF_W, r10, r6, -4, 0),                      // 8: key on the stack
        insn(BPF_LD | BPF_DW | BPF_IMM, r1, BPF_PSEUDO_MAP_FD, 0, map_fd),    // 9-10: r1 = map
        insn(0, 0, 0, 0, 0),
        insn(BPF_ALU64 | BPF_MOV | BPF_X, r2, r10, 0, 0),                     // 11: r2 = &key
        insn(BPF_ALU64 | BPF_ADD | BPF_K, r2, 0, 0, -4),                      // 12
        insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),          // 13: r0 = &counts[key]
        insn(BPF_JMP | BPF_JEQ | BPF_K, r0, 0, 2, 0),                         // 14: null: skip
        insn(BPF_ALU64 | BPF_MOV | BPF_K, r1, 0, 0, 1),                       // 15
        insn(BPF_STX | BPF_ATOMIC | BPF_DW, r0, r1, 0, BPF_ADD),              // 16: *r0 += 1
        insn(BPF_ALU64 | BPF_MOV | BPF_X, r0, r7, 0, 0),                      // 17: return verdict
        insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),                                 // 18
    }};
  }

  [[nodiscard]] std::uint64_t count(std::uint32_t slot) const {
    std::uint64_t v = 0;
    if (map_fd_ < 0 || bpf_map_lookup_elem(map_fd_, &slot, &v) != 0) return 0;
    return v;
  }

  // Runs `f` on a thread that entered the namespace (netlink sockets and interface names
  // are the namespace's; the calling thread stays where it is).
  template <typename F>
  void in_namespace(F f) {
    std::thread t([&] {
      if (!enter_netns(ns_)) {
        error_ = "cannot enter namespace " + ns_;
        return;
      }
      f();
    });
    t.join();
  }

  std::string ns_;
  std::string iface_;
  std::string error_;
  int map_fd_ = -1;
  int prog_fd_ = -1;
  int hook_ifindex_ = 0;
  bool hooked_ = false;  // the clsact qdisc is there (maybe ours from before: a test's veth is its own)
  bool attached_ = false;
};

}  // namespace twincast::test
