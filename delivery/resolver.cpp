// c-ares on the Asio loop: c-ares tells us (sock_state_cb) which sockets to
// watch; Asio waits on them and on c-ares' own timeout, and hands readiness
// back with ares_process_fd. Answers are delivered by posting to the loop,
// never inline, so a coroutine never re-enters c-ares from its callback.
#include "delivery/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <random>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace delivery {
namespace net = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

constexpr int type_a = 1, type_mx = 15, type_aaaa = 28, class_in = 1;
constexpr int default_ttl = 300;

// The smallest TTL among the answer records of a DNS message (RFC 1035 §4.1).
int answer_ttl(const unsigned char* b, int len) {
  if (!b || len < 12) return 0;
  const int qd = (b[4] << 8) | b[5], an = (b[6] << 8) | b[7];
  int pos = 12;
  auto skip_name = [&]() {
    while (pos < len) {
      const int l = b[pos];
      if ((l & 0xC0) == 0xC0) { pos += 2; return; }
      pos += 1 + l;
      if (l == 0) return;
    }
  };
  for (int i = 0; i < qd; ++i) {
    skip_name();
    pos += 4;
  }
  int ttl = -1;
  for (int i = 0; i < an && pos + 10 <= len; ++i) {
    skip_name();
    if (pos + 10 > len) break;
    const int t = static_cast<int>((static_cast<unsigned>(b[pos + 4]) << 24) | (b[pos + 5] << 16) | (b[pos + 6] << 8) | b[pos + 7]);
    const int rdlen = (b[pos + 8] << 8) | b[pos + 9];
    ttl = ttl < 0 ? t : std::min(ttl, t);
    pos += 10 + rdlen;
  }
  return std::max(ttl, 0);
}

dns_status status_of(int ares_status) {
  switch (ares_status) {
    case ARES_SUCCESS: return dns_status::ok;
    case ARES_ENODATA: return dns_status::no_data;
    case ARES_ENOTFOUND: return dns_status::nxdomain;
    default: return dns_status::temporary;
  }
}

}  // namespace

struct resolver::impl : std::enable_shared_from_this<resolver::impl> {
  struct watch {
    std::unique_ptr<net::posix::stream_descriptor> sd;
    std::uint64_t gen = 0;
    bool want_read = false, want_write = false, reading = false, writing = false;
  };
  struct raw_answer {
    int status;
    std::vector<unsigned char> buf;
  };

  explicit impl(net::io_context& c) : ioc(c), timer(c), rng(std::random_device{}()) {}

  net::io_context& ioc;
  ares_channel channel = nullptr;
  net::steady_timer timer;
  std::map<int, watch> sockets;
  std::uint64_t next_gen = 1;
  std::mt19937 rng;
  std::map<std::string, std::pair<clock::time_point, mx_answer>> mx_cache;
  std::map<std::string, std::pair<clock::time_point, address_answer>> addr_cache;

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<impl*>(data);
    if (!readable && !writable) {
      if (auto it = self->sockets.find(fd); it != self->sockets.end()) {
        boost::system::error_code ec;
        it->second.sd->cancel(ec);
        it->second.sd->release();  // c-ares owns and closes the descriptor
        self->sockets.erase(it);
      }
      return;
    }
    auto& w = self->sockets[fd];
    if (!w.sd) {
      w.sd = std::make_unique<net::posix::stream_descriptor>(self->ioc, fd);
      w.gen = self->next_gen++;
    }
    w.want_read = readable;
    w.want_write = writable;
    self->arm(fd);
  }

  void arm(int fd) {
    auto it = sockets.find(fd);
    if (it == sockets.end()) return;
    auto& w = it->second;
    if (w.want_read && !w.reading) wait(fd, w, false);
    if (w.want_write && !w.writing) wait(fd, w, true);
  }

  // One readiness wait; on it, c-ares does its work and we watch again.
  void wait(int fd, watch& w, bool for_write) {
    (for_write ? w.writing : w.reading) = true;
    std::weak_ptr<impl> weak = shared_from_this();
    const auto gen = w.gen;
    const auto what = for_write ? net::posix::descriptor_base::wait_write : net::posix::descriptor_base::wait_read;
    w.sd->async_wait(what, [weak, fd, gen, for_write](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      auto it = self->sockets.find(fd);
      if (it == self->sockets.end() || it->second.gen != gen) return;  // closed, or a new socket on that fd
      (for_write ? it->second.writing : it->second.reading) = false;
      if (ec) return;
      ares_process_fd(self->channel, for_write ? ARES_SOCKET_BAD : fd, for_write ? fd : ARES_SOCKET_BAD);
      self->arm(fd);
      self->reset_timer();
    });
  }

  void reset_timer() {
    timeval tv{};
    if (!ares_timeout(channel, nullptr, &tv)) {
      timer.cancel();
      return;
    }
    timer.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    std::weak_ptr<impl> weak = shared_from_this();
    timer.async_wait([weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->reset_timer();
    });
  }

  // The initiation is a named local, not a temporary inside the co_await
  // expression: GCC 12 destroys such temporaries wrongly.
  net::awaitable<raw_answer> query(std::string name, int type) {
    auto self = shared_from_this();
    const char* qname = name.c_str();
    auto initiate = [self, qname, type](auto handler) {
          using handler_t = decltype(handler);
          struct pending {
            std::shared_ptr<impl> owner;
            handler_t h;
          };
          auto* p = new pending{self, std::move(handler)};
          ares_query(
              self->channel, qname, class_in, type,
              [](void* arg, int status, int, unsigned char* abuf, int alen) {
                std::unique_ptr<pending> p(static_cast<pending*>(arg));
                raw_answer a{status, abuf ? std::vector<unsigned char>(abuf, abuf + alen) : std::vector<unsigned char>{}};
                auto& ioc = p->owner->ioc;
                net::post(ioc, [h = std::move(p->h), a = std::move(a)]() mutable { std::move(h)(std::move(a)); });
              },
              p);
          self->reset_timer();
    };
    auto answer = co_await net::async_initiate<decltype(net::use_awaitable), void(raw_answer)>(initiate, net::use_awaitable);
    co_return answer;
  }
};

resolver::resolver(net::io_context& ioc, const std::vector<std::string>& servers)
    : impl_(std::make_shared<impl>(ioc)) {
  static const int init = ares_library_init(ARES_LIB_INIT_ALL);
  (void)init;
  ares_options opts{};
  opts.sock_state_cb = &impl::on_sock_state;
  opts.sock_state_cb_data = impl_.get();
  opts.timeout = 2000;  // ms per try; with 2 tries a dead server costs ~4 s per lookup
  opts.tries = 2;
  opts.flags = ARES_FLAG_NOSEARCH;
  const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  if (ares_init_options(&impl_->channel, &opts, mask) != ARES_SUCCESS) throw std::runtime_error("c-ares initialisation failed");
  if (!servers.empty()) {
    std::string csv;
    for (const auto& s : servers) csv += (csv.empty() ? "" : ",") + s;
    if (ares_set_servers_ports_csv(impl_->channel, csv.c_str()) != ARES_SUCCESS)
      throw std::runtime_error("bad DNS server list: " + csv);
  }
}

resolver::~resolver() {
  for (auto& [fd, w] : impl_->sockets) {
    boost::system::error_code ec;
    w.sd->cancel(ec);
    w.sd->release();
  }
  impl_->sockets.clear();
  impl_->timer.cancel();
  ares_destroy(impl_->channel);  // pending queries complete with ARES_EDESTRUCTION
}

net::awaitable<mx_answer> resolver::mx(std::string domain) {
  auto& d = *impl_;
  const auto key = domain;
  if (auto it = d.mx_cache.find(key); it != d.mx_cache.end() && it->second.first > clock::now()) co_return it->second.second;
  const auto raw = co_await d.query(domain, type_mx);
  mx_answer out;
  out.status = status_of(raw.status);
  if (raw.status != ARES_SUCCESS) {
    out.detail = ares_strerror(raw.status);
    co_return out;
  }
  ares_mx_reply* mx = nullptr;
  const int ps = ares_parse_mx_reply(raw.buf.data(), static_cast<int>(raw.buf.size()), &mx);
  if (ps != ARES_SUCCESS) {
    out.status = ps == ARES_ENODATA ? dns_status::no_data : dns_status::temporary;
    out.detail = ares_strerror(ps);
    co_return out;
  }
  for (auto* r = mx; r; r = r->next) {
    std::string host = r->host ? r->host : "";
    if (!host.empty() && host.back() == '.') host.pop_back();
    if (host.empty()) {
      // RFC 7505 §3: a null MX means the domain accepts no mail at all.
      out.status = dns_status::null_mx;
      out.detail = "domain publishes a null MX";
      ares_free_data(mx);
      co_return out;
    }
    out.hosts.push_back({host, r->priority});
  }
  ares_free_data(mx);
  // RFC 5321 §5.1: lowest preference first; equal preferences in random order.
  std::shuffle(out.hosts.begin(), out.hosts.end(), d.rng);
  std::stable_sort(out.hosts.begin(), out.hosts.end(),
                   [](const mx_host& a, const mx_host& b) { return a.preference < b.preference; });
  const int ttl = answer_ttl(raw.buf.data(), static_cast<int>(raw.buf.size()));
  if (ttl > 0) d.mx_cache[key] = {clock::now() + std::chrono::seconds(ttl), out};
  co_return out;
}

net::awaitable<address_answer> resolver::addresses(std::string host) {
  auto& d = *impl_;
  if (auto it = d.addr_cache.find(host); it != d.addr_cache.end() && it->second.first > clock::now())
    co_return it->second.second;
  address_answer out;
  int ttl = default_ttl * 12;
  bool temporary = false, nxdomain = false;
  for (const int type : {type_a, type_aaaa}) {
    const auto raw = co_await d.query(host, type);
    if (raw.status == ARES_ENOTFOUND) nxdomain = true;
    if (raw.status != ARES_SUCCESS) {
      if (status_of(raw.status) == dns_status::temporary) temporary = true;
      if (out.detail.empty()) out.detail = ares_strerror(raw.status);
      continue;
    }
    const int len = static_cast<int>(raw.buf.size());
    if (type == type_a) {
      ares_addrttl ttls[32];
      int n = 32;
      hostent* he = nullptr;
      if (ares_parse_a_reply(raw.buf.data(), len, &he, ttls, &n) == ARES_SUCCESS) {
        for (int i = 0; i < n; ++i) {
          out.addresses.push_back(net::ip::address_v4(ntohl(ttls[i].ipaddr.s_addr)));
          ttl = std::min(ttl, ttls[i].ttl);
        }
      }
      if (he) ares_free_hostent(he);
    } else {
      ares_addr6ttl ttls[32];
      int n = 32;
      hostent* he = nullptr;
      if (ares_parse_aaaa_reply(raw.buf.data(), len, &he, ttls, &n) == ARES_SUCCESS) {
        for (int i = 0; i < n; ++i) {
          net::ip::address_v6::bytes_type b;
          std::copy(std::begin(ttls[i].ip6addr._S6_un._S6_u8), std::end(ttls[i].ip6addr._S6_un._S6_u8), b.begin());
          out.addresses.push_back(net::ip::address_v6(b));
          ttl = std::min(ttl, ttls[i].ttl);
        }
      }
      if (he) ares_free_hostent(he);
    }
  }
  if (!out.addresses.empty()) {
    out.status = dns_status::ok;
    if (ttl > 0) d.addr_cache[host] = {clock::now() + std::chrono::seconds(ttl), out};
  } else {
    out.status = nxdomain ? dns_status::nxdomain : temporary ? dns_status::temporary : dns_status::no_data;
  }
  co_return out;
}

}  // namespace delivery
