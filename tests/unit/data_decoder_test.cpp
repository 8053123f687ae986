// The DATA reader: dot-unstuffing, end of data only at CRLF.CRLF, and a bare
// CR or LF in every position refused (SMTP smuggling). Each case is also fed
// split at every possible point, so chunk boundaries cannot change the result.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "smtp/data_decoder.hpp"

using status = smtp::data_decoder::status;

namespace {

struct decoded {
  std::string out;
  status st;
  std::size_t consumed;
};

decoded decode(const std::vector<std::string_view>& chunks, std::size_t max = 1 << 20) {
  decoded d{{}, status::more, 0};
  smtp::data_decoder dec(d.out, max);
  for (auto c : chunks) {
    const auto r = dec.feed(c);
    d.consumed += r.consumed;
    d.st = r.st;
    if (r.st != status::more) break;
  }
  return d;
}

struct data_case {
  std::string in;
  status st;
  std::string out;  // expected message for status::done
};

}  // namespace

TEST_CASE("data decoder table, whole and split at every position") {
  const data_case cases[] = {
      {".\r\n", status::done, ""},
      {"a\r\n.\r\n", status::done, "a\r\n"},
      {"Subject: x\r\n\r\nbody\r\n.\r\n", status::done, "Subject: x\r\n\r\nbody\r\n"},
      {"..\r\n.\r\n", status::done, ".\r\n"},
      {"..x\r\n.\r\n", status::done, ".x\r\n"},
      {".x\r\n.\r\n", status::done, "x\r\n"},
      {"a.\r\n.\r\n", status::done, "a.\r\n"},
      {"a\r\n..\r\n.\r\n", status::done, "a\r\n.\r\n"},
      {"\r\n.\r\n", status::done, "\r\n"},
      {"8bit \xe9\xff\x80\r\n.\r\n", status::done, "8bit \xe9\xff\x80\r\n"},
      {std::string("nul\0byte\r\n.\r\n", 13), status::done, std::string("nul\0byte\r\n", 10)},
      // Smuggling shapes: none of them ends the message.
      {"a\n.\n", status::bare_lf, ""},
      {"a\r\n.\n", status::bare_lf, ""},
      {"a\n.\r\n", status::bare_lf, ""},
      {"a\r.\r\n", status::bare_cr, ""},
      {"a\r\n.\r", status::more, ""},
      {"a\r\n.\rx", status::bare_cr, ""},
      {"\n", status::bare_lf, ""},
      {"\r", status::more, ""},
      {"\rx", status::bare_cr, ""},
      {".\n", status::bare_lf, ""},
      {"a\rb\r\n.\r\n", status::bare_cr, ""},
      {"a\r\r\n.\r\n", status::bare_cr, ""},
      {"line\r\n\n.\r\n", status::bare_lf, ""},
      {"no end yet\r\n", status::more, ""},
  };
  for (const auto& c : cases) {
    INFO("input: " << c.in);
    const auto whole = decode({c.in});
    CHECK(whole.st == c.st);
    if (c.st == status::done) {
      CHECK(whole.out == c.out);
      CHECK(whole.consumed == c.in.size());
    }
    for (std::size_t cut = 1; cut < c.in.size(); ++cut) {
      INFO("split at " << cut);
      const std::string_view v(c.in);
      const auto split = decode({v.substr(0, cut), v.substr(cut)});
      CHECK(split.st == c.st);
      if (c.st == status::done) CHECK(split.out == c.out);
    }
  }
}

TEST_CASE("input after the end of data is left for the next command") {
  const std::string in = "body\r\n.\r\nQUIT\r\n";
  const auto d = decode({in});
  CHECK(d.st == status::done);
  CHECK(d.consumed == in.size() - 6);
}

TEST_CASE("a bare LF or CR is reported at its position") {
  std::string out;
  smtp::data_decoder dec(out, 1000);
  const auto r = dec.feed("abc\ndef");
  CHECK(r.st == status::bare_lf);
  CHECK(r.consumed == 3);
}

TEST_CASE("the size cap drops the excess but still finds the end") {
  std::string out;
  smtp::data_decoder dec(out, 10);
  const std::string big = std::string(100, 'x') + "\r\n.\r\n";
  const auto r = dec.feed(big);
  CHECK(r.st == status::done);
  CHECK(dec.overflow());
  CHECK(dec.size() == 102);
  CHECK(out.size() <= 10);
}

TEST_CASE("a message of exactly the limit is accepted") {
  std::string out;
  smtp::data_decoder dec(out, 10);
  const auto r = dec.feed("12345678\r\n.\r\n");
  CHECK(r.st == status::done);
  CHECK_FALSE(dec.overflow());
  CHECK(out == "12345678\r\n");
}

namespace {

// The definition, one octet at a time and with no fast paths: what the
// decoder must agree with on any input, however it is cut into pieces.
decoded reference_decode(std::string_view in) {
  decoded d{{}, status::more, 0};
  bool bol = true;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '\n') return {d.out, status::bare_lf, i};
    if (c == '\r') {
      if (i + 1 == in.size()) return {d.out, status::more, in.size()};
      if (in[i + 1] != '\n') return {d.out, status::bare_cr, i + 1};
      // The line is exactly "." (earlier line ends were all CRLF).
      const bool end = i > 0 && in[i - 1] == '.' && (i == 1 || in[i - 2] == '\n');
      if (end) return {d.out, status::done, i + 2};
      d.out += "\r\n";
      ++i;
      bol = true;
      continue;
    }
    if (bol && c == '.') {
      bol = false;  // a leading period is dropped (the end marker is found above)
      continue;
    }
    d.out += c;
    bol = false;
  }
  return {d.out, status::more, in.size()};
}

}  // namespace

TEST_CASE("data decoder agrees with an octet-at-a-time reference on random input") {
  // Inputs from the octets that matter (and one that does not), long enough
  // to hold several lines; every input is also fed in random pieces.
  std::uint64_t seed = 0x9e3779b97f4a7c15ULL;
  auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const char alphabet[] = {'a', 'a', 'a', '.', '\r', '\n', '\r', 'b'};
  for (int round = 0; round < 20000; ++round) {
    std::string in;
    const auto len = next() % 40;
    for (std::uint64_t k = 0; k < len; ++k) {
      // Mostly well-formed lines, so that "done" and long runs happen too.
      if (next() % 4 == 0) in += "\r\n";
      in += alphabet[next() % sizeof alphabet];
    }
    if (next() % 2 == 0) in += "\r\n.\r\n";
    const auto want = reference_decode(in);
    INFO("input: " << in);
    std::vector<std::string_view> pieces;
    const std::string_view v(in);
    for (std::size_t at = 0; at < v.size();) {
      const auto n = 1 + next() % 7;
      pieces.push_back(v.substr(at, n));
      at += n;
    }
    for (const auto& chunks : {std::vector<std::string_view>{v}, pieces}) {
      const auto got = decode(chunks);
      REQUIRE(got.st == want.st);
      if (want.st == status::done) {
        REQUIRE(got.out == want.out);
        REQUIRE(got.consumed == want.consumed);
      }
    }
  }
}
