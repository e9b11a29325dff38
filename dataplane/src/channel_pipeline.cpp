// The production ChannelPipeline: dataplane::Channel (selector + remux + pacer).
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
  void poll(std::uint64_t now_ns, DatagramSink& sink) override { channel_.poll(now_ns, sink); }
  [[nodiscard]] ChannelStats stats() const override { return channel_.stats(); }
  void add_tap(PacketTap* tap, std::size_t slot) override { channel_.add_tap(tap, slot); }

 private:
  Channel channel_;
};

}  // namespace

std::unique_ptr<ChannelPipeline> make_channel_pipeline(const ChannelConfig& config) {
  return std::make_unique<ChannelAdapter>(config);
}

}  // namespace twincast::dataplane
