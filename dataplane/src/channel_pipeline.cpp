// The production ChannelPipeline: dataplane::Channel (selector + remux + pacer).
#include <atomic>

#include "twincast/dataplane/channel.hpp"
#include "twincast/dataplane/dataplane.hpp"

namespace twincast::dataplane {
namespace {

class ChannelAdapter final : public ChannelPipeline {
 public:
  explicit ChannelAdapter(const ChannelConfig& config) : channel_(config) {}
  void push(std::size_t input, std::span<const mpegts::TsPacket> packets, std::uint64_t now_ns) override {
    channel_.push(input, packets, now_ns);
  }
  void poll(std::uint64_t now_ns, DatagramSink& sink) override {
    // An operator's switch, handed over from a control thread: applied here, on the
    // lcore that owns the channel.
    const int want = requested_.exchange(-1, std::memory_order_acquire);
    if (want >= 0) channel_.force_input(static_cast<std::size_t>(want), now_ns);
    channel_.poll(now_ns, sink);
  }
  bool request_switch(std::size_t input) override {
    if (input >= channel_.config().inputs.size()) return false;
    // An input that is not healthy would be left again at the selector's next tick.
    if (!channel_.input_snapshot(input).healthy) return false;
    requested_.store(static_cast<int>(input), std::memory_order_release);
    return true;
  }
  [[nodiscard]] ChannelStats stats() const override { return channel_.stats(); }
  [[nodiscard]] InputSnapshot input_snapshot(std::size_t input) const override { return channel_.input_snapshot(input); }
  [[nodiscard]] PacingHistogram pacing_lateness(std::size_t output) const override {
    return channel_.pacing_lateness(output);
  }
  [[nodiscard]] std::uint64_t queue_dropped_packets(std::size_t output) const override {
    return channel_.queue_dropped_packets(output);
  }
  void add_tap(PacketTap* tap, std::size_t slot) override { channel_.add_tap(tap, slot); }
  void describe(const ChannelConfig& next) override { channel_.describe(next); }
  void readdress(const std::vector<OutputConfig>& outputs) override { channel_.readdress(outputs); }
  void continue_from(const ChannelPipeline& previous) override {
    if (const auto* p = dynamic_cast<const ChannelAdapter*>(&previous)) channel_.continue_from(p->channel_);
  }

 private:
  Channel channel_;
  std::atomic<int> requested_{-1};
};

}  // namespace

std::unique_ptr<ChannelPipeline> make_channel_pipeline(const ChannelConfig& config) {
  return std::make_unique<ChannelAdapter>(config);
}

}  // namespace twincast::dataplane
