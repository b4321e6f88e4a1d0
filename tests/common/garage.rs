//! A real Garage server (S3-compatible, distributed) for the remote tests.
//!
//! [`Garage::start`] runs one node on 127.0.0.1, [`GarageCluster::start3`]
//! three nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with replication factor 3
//! (Linux routes all of 127.0.0.0/8 to `lo`). Each lives in a temporary
//! directory (its config, sqlite metadata, data blocks and log), gets free
//! ports, a layout applied, one access key and one bucket made with the
//! `garage` CLI, and is killed on drop.
//!
//! Garage must be installed (`.ci/run` does it: `cargo install garage --locked
//! --no-default-features --features bundled-libs,sqlite`); without it every
//! test that starts one fails, saying so. It is looked for in `$GARAGE_BIN`,
//! then on `PATH`, then in `~/.cargo/bin`.
//!
//! What the server supports (and does not) is pinned down by tests/garage.rs.
//!
//! Debugging: `GARAGE_KEEP=1` keeps the directories (their paths are printed),
//! `GARAGE_LOG=garage=debug` sets the servers' `RUST_LOG` (default `garage=info`).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The S3 region every test server answers to (Garage checks it in signatures).
pub const REGION: &str = "garage";

/// The name of the bucket made in every test server.
pub const BUCKET: &str = "cplane-test";

/// How long a node may take to answer, a layout to settle, or a restarted
/// node to rejoin, before the harness fails the test.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The install line printed when `garage` cannot be found.
pub const INSTALL: &str = "cargo install garage --locked --no-default-features --features bundled-libs,sqlite";

/// The `garage` binary: `$GARAGE_BIN`, else `garage` on `PATH`, else in
/// `$CARGO_HOME/bin` or `~/.cargo/bin`. Panics (never skips) when there is none.
pub fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "GARAGE_BIN={} is not a file", p.display());
        return p;
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("garage"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME").map(|c| PathBuf::from(c).join("bin/garage"));
    let in_home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    on_path
        .into_iter()
        .chain(cargo_home)
        .chain(in_home)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "garage is not installed (not on PATH nor in ~/.cargo/bin): the remote tests run a real \
                 Garage server. Run `bash .ci/run` (it installs it), or `{INSTALL}` (about 12 minutes on \
                 2 cores), or set GARAGE_BIN"
            )
        })
}

/// A port on `ip` that nothing listens on right now.
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind a port on {ip} (is {ip} routed to lo?): {e}"))
        .local_addr()
        .unwrap()
        .port()
}

/// 32 random bytes in hex, for the RPC secret and the admin token.
fn random_hex32() -> String {
    use std::io::Read;
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The last `n` bytes of a log file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let s = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&s[s.len().saturating_sub(n)..]).into_owned()
}

/// One Garage process: its directory, config, addresses and (while running) child.
pub struct Node {
    /// The node's directory: `garage.toml`, `meta/`, `data/`, `garage.log`.
    pub dir: PathBuf,
    pub config: PathBuf,
    pub s3: SocketAddr,
    pub rpc: SocketAddr,
    pub admin: SocketAddr,
    /// `<hex node id>@<rpc address>`, known once the node has run.
    pub id: String,
    ip: Ipv4Addr,
    replication: usize,
    rpc_secret: String,
    child: Option<Child>,
}

impl Node {
    /// A node on `ip` with its config under `dir` (created), not started.
    fn configure(dir: PathBuf, ip: Ipv4Addr, replication: usize, rpc_secret: &str) -> Node {
        fs::create_dir_all(&dir).unwrap();
        let unset = SocketAddr::new(IpAddr::V4(ip), 0);
        let mut node = Node {
            config: dir.join("garage.toml"),
            dir,
            s3: unset,
            rpc: unset,
            admin: unset,
            id: String::new(),
            ip,
            replication,
            rpc_secret: rpc_secret.to_string(),
            child: None,
        };
        node.write_config();
        node
    }

    /// Picks free ports and (re)writes `garage.toml`.
    fn write_config(&mut self) {
        let ip = self.ip;
        self.s3 = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
        self.rpc = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
        self.admin = SocketAddr::new(IpAddr::V4(ip), free_port(ip));
        let (dir, s3, rpc, admin) = (self.dir.display(), self.s3, self.rpc, self.admin);
        let (replication, rpc_secret) = (self.replication, &self.rpc_secret);
        let admin_token = random_hex32();
        fs::write(
            &self.config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = {replication}

rpc_bind_addr = "{rpc}"
rpc_public_addr = "{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "{s3}"

[admin]
api_bind_addr = "{admin}"
admin_token = "{admin_token}"
"#
            ),
        )
        .unwrap();
    }

    /// First start: spawns the server and waits until it answers RPC. A port
    /// taken between picking it and the server binding it (by another test)
    /// makes the server exit at once: then new ports, up to three times.
    fn start_fresh(&mut self) {
        for attempt in 1..=3 {
            self.spawn();
            let t0 = Instant::now();
            loop {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    self.child = None;
                    let log = tail(&self.log(), 4000);
                    if attempt < 3 && log.contains("in use") {
                        self.write_config();
                        break;
                    }
                    panic!(
                        "garage server {} exited ({status}) on start; its log ({}):\n{log}",
                        self.s3,
                        self.log().display()
                    );
                }
                if self.cli(&["status"]).status.success() {
                    self.id = self.cli_ok(&["node", "id", "-q"]).trim().to_string();
                    return;
                }
                assert!(
                    t0.elapsed() < READY_TIMEOUT,
                    "garage server {} does not answer `garage status` after {READY_TIMEOUT:?}; its log ({}):\n{}",
                    self.s3,
                    self.log().display(),
                    tail(&self.log(), 4000)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("garage.log")
    }

    /// Starts the server (its output appended to `garage.log`).
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.s3);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", std::env::var("GARAGE_LOG").unwrap_or("garage=info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", garage_bin().display()));
        self.child = Some(child);
    }

    /// Fails the test, with the server's log, if the server has exited.
    fn check_alive(&mut self, doing: &str) {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!(
                "garage server {} exited ({status}) while {doing}; its log ({}):\n{}",
                self.s3,
                self.log().display(),
                tail(&self.log(), 4000)
            );
        }
    }

    /// `garage -c CONFIG ARGS` (talks to this node over RPC).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run garage {args:?}: {e}"))
    }

    /// `garage ARGS`, which must succeed: its stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "`garage {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Retries `garage ARGS` until it succeeds (the cluster settling after a
    /// start or a layout change), failing the test after [`READY_TIMEOUT`].
    fn cli_retry(&mut self, args: &[&str]) -> String {
        let t0 = Instant::now();
        loop {
            self.check_alive(&format!("running `garage {}`", args.join(" ")));
            let out = self.cli(args);
            if out.status.success() {
                return String::from_utf8(out.stdout).unwrap();
            }
            if t0.elapsed() > READY_TIMEOUT {
                panic!(
                    "`garage {}` still failing after {READY_TIMEOUT:?} ({}): {}{}\nserver log ({}):\n{}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.log().display(),
                    tail(&self.log(), 4000)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the node answers RPC and records its id.
    fn wait_rpc(&mut self) {
        self.cli_retry(&["status"]);
        self.id = self.cli_ok(&["node", "id", "-q"]).trim().to_string();
    }

    /// The cluster's health as this node sees it (Garage's `GetClusterHealth`).
    pub fn health(&self) -> serde_json::Value {
        let out = self.cli(&["json-api", "GetClusterHealth"]);
        if !out.status.success() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until this node reports the cluster fully healthy with `nodes`
    /// storage nodes up, then until its S3 port accepts connections.
    fn wait_healthy(&mut self, nodes: u64) {
        let t0 = Instant::now();
        loop {
            self.check_alive("waiting for the cluster to be healthy");
            let h = self.health();
            if h["status"] == "healthy" && h["storageNodesUp"] == nodes {
                break;
            }
            assert!(
                t0.elapsed() < READY_TIMEOUT,
                "garage cluster not healthy with {nodes} nodes after {READY_TIMEOUT:?}: {h}\nserver log ({}):\n{}",
                self.log().display(),
                tail(&self.log(), 4000)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        while TcpStream::connect_timeout(&self.s3, Duration::from_millis(200)).is_err() {
            self.check_alive("waiting for its S3 port");
            assert!(
                t0.elapsed() < READY_TIMEOUT,
                "garage S3 API {} not accepting connections after {READY_TIMEOUT:?}",
                self.s3
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the server (a crash), if running, and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://IP:PORT` of the node's S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server's temporary directory: removed on drop, unless `GARAGE_KEEP` is
/// set (then its path, with each node's `garage.log`, is printed).
struct Keep(Option<tempfile::TempDir>);

impl Drop for Keep {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && std::env::var_os("GARAGE_KEEP").is_some()
        {
            eprintln!("GARAGE_KEEP: kept {}", dir.keep().display());
        }
    }
}

/// Credentials and bucket of a running server or cluster.
#[derive(Clone, Debug)]
pub struct Access {
    pub access_key: String,
    pub secret: String,
    pub bucket: String,
    pub region: String,
}

/// Assigns every node a role (one zone each, 1 GB), applies layout version 1,
/// then makes a key and [`BUCKET`] with read and write on it, through `nodes[0]`.
fn layout_key_bucket(nodes: &mut [Node]) -> Access {
    for (i, n) in nodes.iter().enumerate() {
        let id = n.id.split('@').next().unwrap().to_string();
        let zone = format!("z{}", i + 1);
        nodes[0].cli_ok(&["layout", "assign", "-z", &zone, "-c", "1G", &id]);
    }
    nodes[0].cli_ok(&["layout", "apply", "--version", "1"]);
    let count = nodes.len() as u64;
    nodes[0].wait_healthy(count);
    let key = nodes[0].cli_retry(&["key", "create", "cplane-test-key"]);
    let field = |name: &str| {
        key.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no `{name}` in the output of `garage key create`:\n{key}"))
            .to_string()
    };
    let access = Access {
        access_key: field("Key ID:"),
        secret: field("Secret key:"),
        bucket: BUCKET.to_string(),
        region: REGION.to_string(),
    };
    nodes[0].cli_retry(&["bucket", "create", BUCKET]);
    nodes[0].cli_retry(&[
        "bucket",
        "allow",
        "--read",
        "--write",
        "--owner",
        BUCKET,
        "--key",
        &access.access_key,
    ]);
    access
}

/// The environment the cplane binary (and `object_store`'s
/// `AmazonS3Builder::from_env`) needs to reach `endpoint` with `access`.
fn env_for(endpoint: String, access: &Access) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", access.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", access.secret.clone()),
        ("AWS_REGION", access.region.clone()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
}

/// One Garage node on 127.0.0.1 (replication factor 1, sqlite metadata) with
/// a key and a bucket; killed on drop, its directory removed.
pub struct Garage {
    node: Node,
    access: Access,
    // Last: removed after the node is killed.
    _dir: Keep,
}

impl Garage {
    /// Starts the node and waits until it serves S3 (failing the test, with
    /// the server's log, if that takes more than 30 s or the server exits).
    pub fn start() -> Garage {
        garage_bin(); // fail early, with the install line
        let dir = tempfile::Builder::new().prefix("garage-").tempdir().unwrap();
        let mut node = Node::configure(dir.path().join("node"), Ipv4Addr::LOCALHOST, 1, &random_hex32());
        node.start_fresh();
        let access = layout_key_bucket(std::slice::from_mut(&mut node));
        Garage {
            node,
            access,
            _dir: Keep(Some(dir)),
        }
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (path-style requests).
    pub fn endpoint(&self) -> String {
        self.node.endpoint()
    }
    pub fn region(&self) -> &str {
        &self.access.region
    }
    pub fn access_key(&self) -> &str {
        &self.access.access_key
    }
    pub fn secret(&self) -> &str {
        &self.access.secret
    }
    pub fn bucket(&self) -> &str {
        &self.access.bucket
    }
    /// `s3://BUCKET/PREFIX`, the URL a cplane remote names.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.access.bucket)
    }
    /// `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ALLOW_HTTP=true` for the cplane binary.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_for(self.endpoint(), &self.access)
    }
    /// Key, secret, bucket and region together.
    pub fn access(&self) -> &Access {
        &self.access
    }
    /// The node (its directory, config, `cli`).
    pub fn node(&self) -> &Node {
        &self.node
    }
}

/// Three Garage nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3, connected,
/// replication factor 3 (writes and reads need 2 of 3), one key and bucket.
/// Every node serves S3; all are killed on drop.
pub struct GarageCluster {
    nodes: Vec<Node>,
    access: Access,
    _dir: Keep,
}

impl GarageCluster {
    pub fn start3() -> GarageCluster {
        garage_bin();
        let dir = tempfile::Builder::new().prefix("garage3-").tempdir().unwrap();
        let secret = random_hex32();
        let mut nodes: Vec<Node> = (1..=3u8)
            .map(|i| {
                Node::configure(
                    dir.path().join(format!("node{i}")),
                    Ipv4Addr::new(127, 0, 0, i),
                    3,
                    &secret,
                )
            })
            .collect();
        for n in &mut nodes {
            n.start_fresh();
        }
        for i in 1..nodes.len() {
            let peer = nodes[i].id.clone();
            nodes[0].cli_retry(&["node", "connect", &peer]);
        }
        let access = layout_key_bucket(&mut nodes);
        for n in &mut nodes[1..] {
            n.wait_healthy(3);
        }
        GarageCluster {
            nodes,
            access,
            _dir: Keep(Some(dir)),
        }
    }

    /// The S3 endpoint of node `i` (0, 1 or 2).
    pub fn endpoint(&self, i: usize) -> String {
        self.nodes[i].endpoint()
    }
    pub fn access(&self) -> &Access {
        &self.access
    }
    /// The environment for the cplane binary talking to node `i`.
    pub fn env(&self, i: usize) -> Vec<(&'static str, String)> {
        env_for(self.endpoint(i), &self.access)
    }
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Kills node `i` (SIGKILL: a crash, nothing flushed on the way out).
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again (same directory, id and ports), connects it and
    /// the others both ways, and waits until every node sees all three up.
    ///
    /// (Garage's peers redial a lost node only every 30 s, and a connection
    /// the restarted node opens to them does not count as theirs to it; a node
    /// killed soon after it joined may also not have saved its peer list.)
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        self.nodes[i].wait_rpc();
        let me = self.nodes[i].id.clone();
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].child.is_some() {
                let peer = self.nodes[j].id.clone();
                self.nodes[i].cli_retry(&["node", "connect", &peer]);
                self.nodes[j].cli_retry(&["node", "connect", &me]);
            }
        }
        for n in &mut self.nodes {
            n.wait_healthy(3);
        }
    }

    /// Waits until node `from` (a running one) sees `up` storage nodes up and
    /// the cluster still able to serve (`healthy` or `degraded`).
    pub fn wait_nodes_up(&mut self, from: usize, up: u64) {
        let t0 = Instant::now();
        loop {
            self.nodes[from].check_alive("waiting for the other nodes");
            let h = self.nodes[from].health();
            if h["storageNodesUp"] == up && (h["status"] == "healthy" || h["status"] == "degraded") {
                return;
            }
            assert!(
                t0.elapsed() < READY_TIMEOUT,
                "node {from} does not see {up} storage nodes up after {READY_TIMEOUT:?}: {h}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
