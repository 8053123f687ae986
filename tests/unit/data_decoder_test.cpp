// The DATA reader: dot-unstuffing, end of data only at CRLF.CRLF, and a bare
// CR or LF in every position refused (SMTP smuggling). Each case is also fed
// split at every possible point, so chunk boundaries cannot change the result.
#include <catch2/catch.hpp>

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
