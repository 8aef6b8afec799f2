#!/usr/bin/env python3
"""Registry CPU per request (issue 15): what one request of each kind a sync makes costs a local
docker-registry (distribution), in CPU milliseconds of the registry process, measured from its
/proc stat over N requests on one keep-alive connection. The registry is configured as in
scripts/bench-sync.sh (filesystem storage, access log on). Prints a markdown table.

Usage: scripts/registry-cost.py [N]     Needs: docker-registry (Debian package), python3.
"""
import hashlib, http.client, json, os, shutil, socket, subprocess, sys, tempfile, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
if shutil.which("docker-registry") is None:
    sys.exit("missing docker-registry: apt-get install docker-registry")
work = tempfile.mkdtemp(prefix="oci-rs-registry-cost.", dir="/var/tmp")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
with open(f"{work}/config.yml", "w") as f:
    f.write(f"""version: 0.1
log: {{level: error, accesslog: {{disabled: false}}}}
storage: {{filesystem: {{rootdirectory: {work}/storage}}, delete: {{enabled: true}}}}
http: {{addr: 127.0.0.1:{port}, secret: bench}}
""")
log = open(f"{work}/registry.log", "w")
reg = subprocess.Popen(["docker-registry", "serve", f"{work}/config.yml"], stdout=log, stderr=log)
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
        except OSError:
            time.sleep(0.1)
    tck = os.sysconf("SC_CLK_TCK")
    def cpu():
        f = open(f"/proc/{reg.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    c = http.client.HTTPConnection("127.0.0.1", port)
    def req(method, path, body=None, headers=None):
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse(); r.read(); return r
    rows = []
    def measure(name, fn):
        a = cpu()
        for i in range(n):
            fn(i)
        rows.append((name, (cpu() - a) / n * 1000))
    rnd = os.urandom(16384)
    digests = []
    def upload(i):
        data = rnd + i.to_bytes(8, "big")
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        loc = req("POST", "/v2/t/a/blobs/uploads/").getheader("Location")
        r = req("PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", data,
                {"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.status
        digests.append((d, len(data)))
    measure("blob upload of 16 KiB (POST, then PUT with the bytes)", upload)
    measure("HEAD blob, present", lambda i: req("HEAD", f"/v2/t/a/blobs/{digests[i][0]}"))
    measure("HEAD blob, absent", lambda i: req("HEAD", "/v2/t/a/blobs/sha256:" + hashlib.sha256(b"%d" % i).hexdigest()))
    measure("HEAD manifest by digest, absent", lambda i: req("HEAD", f"/v2/t/a/manifests/{digests[i][0]}"))
    measure("mount into a new repository (POST ?mount=&from=)",
            lambda i: req("POST", f"/v2/t/b{i}/blobs/uploads/?mount={digests[i][0]}&from=t/a"))
    def put_manifest(i):
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                   "digest": digests[i][0], "size": digests[i][1]},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                    "digest": digests[(i + 1) % n][0], "size": digests[(i + 1) % n][1]}]}).encode()
        r = req("PUT", f"/v2/t/a/manifests/tag{i}", m, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status == 201, r.status
    measure("PUT manifest by tag", put_manifest)
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    measure("GET manifest by tag", lambda i: req("GET", f"/v2/t/a/manifests/tag{i}", headers=accept))
    measure("HEAD manifest by tag", lambda i: req("HEAD", f"/v2/t/a/manifests/tag{i}", headers=accept))
    measure("GET blob of 16 KiB", lambda i: req("GET", f"/v2/t/a/blobs/{digests[i][0]}"))
    print(f"registry: docker-registry {subprocess.run(['docker-registry', '--version'], capture_output=True, text=True).stdout.strip()}; {n} requests of each kind")
    print()
    print("| request | registry CPU ms per request |")
    print("|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")
finally:
    reg.terminate(); reg.wait(); log.close(); shutil.rmtree(work, ignore_errors=True)
