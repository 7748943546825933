// The atlas client as scripts use it: -c, stdin scripts, exit codes, blob upload and save;
// and peercred principal mode with a real second Unix user.
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/daemon.h"

using atlas::testing::BinDir;
using atlas::testing::Daemon;
using atlas::testing::Run;
using atlas::testing::Texts;

namespace {
std::string Atlas(const Daemon& d) { return BinDir() + "/atlas --socket " + d.socket_path(); }
}  // namespace

TEST_CASE("atlas runs piped commands in order and exits 0 when all got OK") {
  Daemon d;
  REQUIRE(d.Start());
  auto [rc, out] = Run("printf 'KEY PUT a.b hi\\nKEY GET a.b\\n' | " + Atlas(d));
  CHECK(rc == 0);
  CHECK(out == "OK\nVALUE:hi\nOK\n");
}

TEST_CASE("atlas exits 1 when any command got ERROR, 2 when it cannot connect") {
  Daemon d;
  REQUIRE(d.Start());
  auto [rc, out] = Run("printf 'KEY GET nodot\\nKEY PUT a.b x\\n' | " + Atlas(d));
  CHECK(rc == 1);
  CHECK(out == "ERROR WARN invalid key 'nodot': expected <table>.<row>\nOK\n");
  auto [rc2, out2] = Run(BinDir() + "/atlas --socket /nonexistent/sock -c 'NODE LIST' 2>&1");
  CHECK(rc2 == 2);
  CHECK(out2.find("cannot connect") != std::string::npos);
  auto [rc3, out3] = Run(BinDir() + "/atlas --bogus-flag 2>&1");
  CHECK(rc3 == 2);
}

TEST_CASE("atlas -c runs one command - tagged replies are shown with their tag") {
  Daemon d;
  REQUIRE(d.Start());
  auto [rc, out] = Run(Atlas(d) + " -c 'KEY PUT t.x 1' -c '[ID:7] KEY GET t.x'");
  CHECK(rc == 0);
  CHECK(out == "OK\n[ID:7] VALUE:1\n[ID:7] OK\n");
}

TEST_CASE("atlas uploads a file with @file and saves a blob with --out") {
  Daemon d;
  REQUIRE(d.Start());
  std::string in = d.data_dir() + "/../in.bin", saved = d.data_dir() + "/../out.bin";
  std::string bytes("\x00\x01\x02\r\nbinary", 11);
  std::ofstream(in, std::ios::binary) << bytes;
  auto [rc, out] = Run(Atlas(d) + " -c 'KEY BLOB SET files.f @" + in + "'");
  CHECK(rc == 0);
  CHECK(out == "OK\n");
  auto [rc2, out2] = Run(Atlas(d) + " -c 'KEY BLOB GET files.f'");
  CHECK(rc2 == 0);
  CHECK(out2 == "BLOB 11\n  hex: 00 01 02 0d 0a 62 69 6e 61 72 79\nOK\n");
  auto [rc3, out3] = Run(Atlas(d) + " --out " + saved + " -c 'KEY BLOB GET files.f'");
  CHECK(rc3 == 0);
  std::ifstream f(saved, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(back == bytes);
  // In a script, KEY BLOB SET <key> <n> takes the next n bytes of the script.
  auto [rc4, out4] = Run("printf 'KEY BLOB SET files.s 4\\nab\\ncKEY BLOB GET files.s\\n' | " + Atlas(d));
  CHECK(rc4 == 0);
  CHECK(out4 == "OK\nBLOB 4\n  text: \"ab\\nc\"\nOK\n");
}

TEST_CASE("peercred: the principal is the Unix user and only admins assume others") {
  if (geteuid() != 0) {
    WARN("skipped: needs root to connect as a second Unix user");
    return;
  }
  Daemon d({"--principal-mode", "peercred", "--admin-users", "root", "--socket-mode", "0666"});
  REQUIRE(d.Start());
  ::chmod(d.data_dir().c_str(), 0755);
  ::chmod((d.data_dir() + "/..").c_str(), 0755);
  auto root = d.Connect();
  REQUIRE(root);
  CHECK(Texts(*root->Call("PRINCIPAL WHOAMI")) == "PRINCIPAL root\nOK");
  CHECK(Texts(*root->Call("ACL GRANT secret root PERMS OWNER")) == "OK");
  CHECK(Texts(*root->Call("KEY PUT secret.k v")) == "OK");
  CHECK(Texts(*root->Call("PRINCIPAL ASSUME someone")) == "OK");  // admins may

  // A child process as user nobody.
  struct passwd* nobody = getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    if (setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0) _exit(3);
    auto c = atlas::client::Connection::Open(d.socket_path(), "clientId=nobody",
                                             std::chrono::milliseconds(5000));
    std::string out;
    if (!c.ok()) {
      out = "connect failed: " + std::string(c.status().message());
    } else {
      for (const char* cmd : {"PRINCIPAL WHOAMI", "PRINCIPAL ASSUME root", "KEY GET secret.k",
                              "KEY PUT secret.k PRINCIPAL root stolen"}) {
        out += Texts(*(*c)->Call(cmd)) + "\n";
      }
    }
    (void)!write(pipefd[1], out.data(), out.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status;
  waitpid(pid, &status, 0);
  CHECK(out ==
        "PRINCIPAL nobody\nOK\n"
        "ERROR WARN permission denied for principal 'nobody': PRINCIPAL ASSUME (principal-mode "
        "peercred: only admin-users may assume another principal)\n"
        "ERROR WARN permission denied for principal 'nobody': READ on secret\n"
        "ERROR WARN permission denied for principal 'nobody': KEY PUT PRINCIPAL (principal-mode "
        "peercred: only admin-users may act as another principal)\n");
}

TEST_CASE("atlas dump and atlas restore copy rows - binary ones too - and grants into another "
          "cluster, paging through many tables and rows") {
  Daemon a, b;
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  {
    auto c = a.Connect();
    REQUIRE(c);
    REQUIRE(Texts(*c->Call("KEY PUT users.alice Alice  Smith")) == "OK");
    REQUIRE(Texts(*c->Call("KEY BLOB SET files.bin 6", std::string_view("a\r\n\0\xff" "z", 6))) ==
            "OK");
    REQUIRE(Texts(*c->Call("KEY BLOB SET files.empty 0", std::string_view())) == "OK");
    REQUIRE(Texts(*c->Call("ACL GRANT users bob PERMS READ")) == "OK");
    REQUIRE(Texts(*c->Call("ACL GRANT users alice PERMS OWNER")) == "OK");
    // More rows and tables than one SCAN / TABLE LIST page (1,000), 400 commands in flight.
    for (int from = 0; from < 1200; from += 200) {
      for (int i = from; i < from + 200; ++i) {
        std::string k = std::to_string(i);
        REQUIRE(c->Send("[ID:" + k + "] KEY PUT many.r" + k + " v" + k + "\r\n").ok());
        REQUIRE(c->Send("[ID:t" + k + "] KEY PUT t" + k + ".r x\r\n").ok());
      }
      for (int i = from; i < from + 200; ++i) {
        REQUIRE(c->ReadReply(std::to_string(i))->back().text == "OK");
        REQUIRE(c->ReadReply("t" + std::to_string(i))->back().text == "OK");
      }
    }
  }
  std::string dir = std::filesystem::path(a.data_dir()).parent_path().string();
  auto [rc, err] = Run(Atlas(a) + " dump --as alice > " + dir + "/dump.jsonl 2>" + dir + "/err");
  INFO(Run("cat " + dir + "/err").second);
  REQUIRE(rc == 0);
  // 2403 rows, a line per table before its rows (1203), 1 grants line.
  CHECK(Run("wc -l < " + dir + "/dump.jsonl").second == "3607\n");
  CHECK(Run("grep -c '^{\"key\":\"files.bin\",\"value_base64\":\"YQ0KAP96\",\"rev\":1}$' " +
            dir + "/dump.jsonl").second == "1\n");
  CHECK(Run("grep -c '^{\"table\":\"many\",\"rev\":1200}$' " + dir + "/dump.jsonl").second ==
        "1\n");
  CHECK(Run("cat " + dir + "/err").second.find("atlas dump: 2403 rows, 1203 tables") !=
        std::string::npos);
  // Without a principal that may read `users`, the dump skips it and says so (exit status 3).
  auto [denied, why_denied] = Run(Atlas(a) + " dump users 2>&1 >/dev/null");
  CHECK(denied == 3);
  CHECK(why_denied.find("1 table(s) not dumped, permission denied: users") != std::string::npos);

  auto [rc2, out2] = Run(Atlas(b) + " restore --as alice " + dir + "/dump.jsonl 2>&1");
  INFO(out2);
  REQUIRE(rc2 == 0);
  CHECK(out2.find("atlas restore: 2403 rows, 1 tables with grants") != std::string::npos);
  auto c = b.Connect();
  REQUIRE(c);
  CHECK(Texts(*c->Call("KEY GET users.alice")) == "ERROR WARN permission denied: READ on users");
  REQUIRE(Texts(*c->Call("PRINCIPAL ASSUME alice")) == "OK");
  CHECK(Texts(*c->Call("KEY GET users.alice")) == "VALUE:Alice  Smith\nOK");
  CHECK(Texts(*c->Call("ACL LIST users")) == "ACL alice OWNER\nACL bob READ\nOK");
  CHECK((*c->Call("KEY BLOB GET files.bin")).front().blob == std::string("a\r\n\0\xff" "z", 6));
  CHECK(Texts(*c->Call("COUNT many")) == "COUNT:1200\nOK");
  CHECK(Texts(*c->Call("KEY GET t1199.r")) == "VALUE:x\nOK");
  // The copy dumps to the same lines, but for the revisions: the restore wrote the rows in
  // another order than the original writes.
  auto [rc3, _3] = Run(Atlas(b) + " dump --as alice > " + dir + "/dump2.jsonl 2>/dev/null");
  CHECK(rc3 == 0);
  for (const char* f : {"/dump", "/dump2"}) {
    Run("sed -E 's/,\"rev\":[0-9]+//' " + dir + f + ".jsonl > " + dir + f + ".norev");
  }
  CHECK(Run("cmp " + dir + "/dump.norev " + dir + "/dump2.norev && echo same").second ==
        "same\n");
  // A line that is not a dump line stops the restore, naming it.
  auto [bad, why] = Run("printf '{\"key\":\"x.y\",\"value\":\"1\"}\\nnot json\\n' | " + Atlas(b) +
                        " restore 2>&1");
  CHECK(bad == 1);
  CHECK(why.find("atlas restore: line 2: not a JSON object") != std::string::npos);
}

// Backups keep their promises (docs/operations.md §Backup and restore): a restore gives a row
// back its WORM retention and expiry to the millisecond, and leaves out what expired since.
TEST_CASE("atlas restore gives rows back their WORM retention and expiry and leaves out rows "
          "that expired since the dump") {
  Daemon a, b;
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  auto ca = a.Connect();
  REQUIRE(ca);
  REQUIRE(Texts(*ca->Call("KEY PUT keep.w WORM TTL 1h protected")) == "OK");
  REQUIRE(Texts(*ca->Call("KEY PUT keep.e EXPIRE 1h session")) == "OK");
  REQUIRE(Texts(*ca->Call("KEY PUT keep.soon EXPIRE 2s brief")) == "OK");
  REQUIRE(Texts(*ca->Call("KEY PUT keep.plain v")) == "OK");
  std::string dir = std::filesystem::path(a.data_dir()).parent_path().string();
  REQUIRE(Run(Atlas(a) + " dump keep > " + dir + "/keep.jsonl 2>/dev/null").first == 0);
  CHECK(Run("grep -c worm_until " + dir + "/keep.jsonl").second == "1\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // keep.soon has expired
  auto [rc, out] = Run(Atlas(b) + " restore " + dir + "/keep.jsonl 2>&1");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("atlas restore: 3 rows") != std::string::npos);
  CHECK(out.find("1 row(s) not restored: expired since the dump") != std::string::npos);
  auto cb = b.Connect();
  REQUIRE(cb);
  // The same instants as on the original: "ROW key= rev= size= worm_until= expires=" minus
  // the revision, which is the copy's own.
  auto instants = [](const std::string& info) { return info.substr(info.find(" size=")); };
  for (const char* key : {"keep.w", "keep.e", "keep.plain"}) {
    INFO(key);
    CHECK(instants(Texts(*cb->Call(std::string("KEY INFO ") + key))) ==
          instants(Texts(*ca->Call(std::string("KEY INFO ") + key))));
  }
  CHECK(Texts(*cb->Call("KEY DEL keep.w")).starts_with(
      "ERROR WARN row 'keep.w' is WORM-protected until 20"));
  CHECK(Texts(*cb->Call("KEY GET keep.soon")) == "NOT_FOUND\nOK");
  // Restored again, the copy's own retention refuses keep.w: the transaction of the table's
  // rows writes nothing, the rows are written one by one up to keep.w, and the restore stops
  // there, naming its line (5: after the table's line, keep.e, keep.plain and keep.soon).
  REQUIRE(Texts(*cb->Call("KEY PUT keep.plain changed")) == "OK");
  auto [again, why] = Run(Atlas(b) + " restore " + dir + "/keep.jsonl 2>&1");
  INFO(why);
  CHECK(again == 1);
  CHECK(why.find("atlas restore: line 5: KEY BLOB SET keep.w WORM EXPIRES 20") !=
        std::string::npos);
  CHECK(why.find("ERROR WARN row 'keep.w' is WORM-protected until") != std::string::npos);
  CHECK(Texts(*cb->Call("KEY GET keep.plain")) == "VALUE:v\nOK");
  // A retention that is over protects nothing: such a row restores as an ordinary one.
  auto [old_rc, old_out] = Run("printf '{\"key\":\"keep.old\",\"value\":\"x\",\"worm_until\":"
                               "\"2020-01-01T00:00:00Z\"}\\n' | " + Atlas(b) + " restore 2>&1");
  INFO(old_out);
  CHECK(old_rc == 0);
  CHECK(Texts(*cb->Call("KEY DEL keep.old")) == "OK");
}

// (No backslash or comma in a test name: ctest passes the name back to Catch as a filter.)
TEST_CASE("the REPL on a terminal runs pasted lines in order and shows help per command and "
          "timing and the principal in the prompt") {
  Daemon d;
  REQUIRE(d.Start());
  std::string dir = std::filesystem::path(d.data_dir()).parent_path().string();
  // `script` gives atlas a terminal; the whole input arrives at once, as a paste does.
  auto [rc, out] =
      Run("printf 'help KEY P\\n\\\\timing\\nKEY PUT t.x 1\\nPRINCIPAL ASSUME alice\\n"
          "KEY GET t.x\\nhelp FROB\\nhelp key set\\nquit\\n' | timeout 20 script -qec '" +
          Atlas(d) + " --history-file " + dir + "/history' /dev/null");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("atlas> help KEY P\r\nKEY PUT <key> [PRINCIPAL <name>]") != std::string::npos);
  CHECK(out.find("Timing is on.") != std::string::npos);
  CHECK(out.find("atlas> KEY PUT t.x 1\r\nOK\r\nTime: ") != std::string::npos);
  CHECK(out.find("atlas(alice)> KEY GET t.x\r\nVALUE:1\r\nOK\r\nTime: ") != std::string::npos);
  CHECK(out.find("no command starts with 'FROB'") != std::string::npos);
  // Aliases are help topics too (the help comes from the command table).
  CHECK(out.find("help key set\r\nKEY SET <key> [PRINCIPAL <name>]") != std::string::npos);
  CHECK(out.find("The same as KEY PUT.") != std::string::npos);
  CHECK(Run("grep -c t.x " + dir + "/history").second == "2\n");  // kept for the next session
}

TEST_CASE("WATCH in the REPL prints events as they arrive and Ctrl-C or Enter ends the watch - "
          "not the REPL") {
  Daemon d;
  REQUIRE(d.Start());
  std::string dir = std::filesystem::path(d.data_dir()).parent_path().string();
  // `script` gives atlas a terminal; the input arrives over time. Another client writes while
  // the watch runs; then Ctrl-C (0x03, which the terminal turns into SIGINT); then a second
  // watch that Enter ends; then more commands in the same REPL.
  // `exec`: script runs its command through $SHELL -c, and a dash that stayed atlas's parent
  // would itself die of the Ctrl-C (script then exits 130).
  const std::string other = Atlas(d) + " -c ";
  auto [rc, out] = Run(
      "( printf 'WATCH w\\n'; sleep 1.5; " + other + "'KEY PUT w.a 1' >/dev/null; " + other +
      "'KEY DEL w.a' >/dev/null; sleep 1; printf '\\003'; sleep 0.5; "
      "printf 'KEY PUT w.b 2\\nWATCH w\\n'; sleep 1; printf '\\n'; sleep 0.5; "
      "printf 'KEY GET w.b\\nquit\\n' ) | timeout 20 script -qec 'exec " + Atlas(d) +
      " --history-file " + dir + "/history' /dev/null");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("watching w after revision 0 (Ctrl-C or Enter ends it)") != std::string::npos);
  CHECK(out.find("1 PUT w.a 1") != std::string::npos);
  CHECK(out.find("2 DEL w.a") != std::string::npos);
  CHECK(out.find("watch ended") != out.rfind("watch ended"));  // both watches ended
  CHECK(out.find("watching w after revision 3") != std::string::npos);
  CHECK(out.find("VALUE:2") != std::string::npos);  // the REPL went on after both
}

TEST_CASE("atlas sends a transaction typed as TXN <n> or BEGIN ... COMMIT once it is complete") {
  Daemon d;
  REQUIRE(d.Start());
  auto [rc, out] = Run("printf 'KEY PUT t.a 1\nTXN 2\nKEY SET t.a IF REV 1 2\n"
                       "KEY BLOB SET t.b 3\nxyzBEGIN\nKEY GET t.a\nKEY BLOB GET t.b\nCOMMIT\n"
                       "BEGIN\nKEY PUT t.c 1\nABORT\nKEY GET t.c\n' | " + Atlas(d));
  CHECK(rc == 0);
  CHECK(out == "OK\nOK\nVALUE:2\nBLOB 3\n  text: \"xyz\"\nOK\nNOT_FOUND\nOK\n");
  // -c lines too; input that ends inside a transaction sends nothing of it.
  auto [rc2, out2] = Run(Atlas(d) + " -c 'BEGIN' -c 'KEY PUT t.d 1' 2>&1; " + Atlas(d) +
                         " -c 'KEY GET t.d'");
  CHECK(out2 == "atlas: the input ended inside a transaction (1 command(s) typed, no COMMIT); "
                "nothing of it was sent\nNOT_FOUND\nOK\n");
  // The REPL's prompt counts the commands of the transaction being typed.
  std::string dir = std::filesystem::path(d.data_dir()).parent_path().string();
  auto [rc3, out3] = Run("printf 'TXN 2\\nKEY PUT t.e 1\\nKEY GET t.e\\nBEGIN\\nCOMMIT\\n"
                         "quit\\n' | timeout 20 script -qec 'exec " + Atlas(d) + " --history-file " +
                         dir + "/history' /dev/null");
  INFO(out3);
  CHECK(rc3 == 0);
  CHECK(out3.find("atlas> TXN 2\r\ntxn 1/2> KEY PUT t.e 1\r\ntxn 2/2> KEY GET t.e\r\n"
                  "VALUE:1\r\nOK\r\natlas> BEGIN\r\ntxn 1 (COMMIT or ABORT)> COMMIT\r\n"
                  "atlas> ") != std::string::npos);
}

TEST_CASE("the REPL shows errors readably with what to try next and scripts get the raw frames") {
  Daemon d;
  REQUIRE(d.Start());
  const std::string input =
      "printf 'KEY GTE t.x\\nKEY PUT bad\\nPRINCIPAL ASSUME bob\\nACL GRANT t bob PERMS OWNER\\n"
      "PRINCIPAL ASSUME eve\\nKEY PUT t.x 1\\nquit\\n'";
  auto [rc, out] = Run(input + " | NO_COLOR=1 timeout 20 script -qec 'exec " + Atlas(d) +
                       " --history-file /dev/null' /dev/null");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("atlas> KEY GTE t.x\r\nerror: unknown command 'KEY GTE'\r\n"
                 "hint: did you mean KEY GET?  KEY GET <key>\r\n") != std::string::npos);
  CHECK(out.find("error: invalid key 'bad': expected <table>.<row>\r\nusage: KEY PUT <key>") !=
        std::string::npos);
  CHECK(out.find("atlas(eve)> KEY PUT t.x 1\r\nerror: permission denied for principal 'eve': "
                 "WRITE on t\r\nhint: PRINCIPAL WHOAMI") != std::string::npos);
  // In color on a terminal that has it.
  auto [rc2, colored] = Run(input + " | TERM=xterm timeout 20 script -qec 'env -u NO_COLOR " +
                            Atlas(d) + " --history-file /dev/null' /dev/null");
  CHECK(colored.find("\033[31merror: unknown command 'KEY GTE'\033[0m") != std::string::npos);
  // A script reads exactly what the server sent.
  auto [rc3, raw] = Run(input + " | " + Atlas(d));
  CHECK(rc3 == 1);
  CHECK(raw.find("ERROR WARN unknown command 'KEY GTE'\n") != std::string::npos);
  CHECK(raw.find("hint:") == std::string::npos);
}
