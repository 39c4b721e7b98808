//! `scripts/slurm/pets-array.sbatch` on a real single-node Slurm: the test starts munged,
//! slurmctld and slurmd (Debian's slurm-wlm) with a configuration generated in a temporary
//! folder, submits the array (four workers) against the PostgreSQL of `PETS_TEST_POSTGRES`, waits
//! for it, checks that the study holds every trial completed exactly once, and stops the daemons.
//! Skipped with a message where slurm-wlm is not installed or not run as root (slurmd launches
//! jobs as their users).

mod cluster;

use cluster::{assert_completed_exactly_once, open, postgres_url, study_args, trials, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Daemons started by the test, killed (and reaped) when it ends, pass or fail.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn slurm_array_job_fills_a_postgres_study() {
    let tools = ["munged", "slurmctld", "slurmd", "sbatch", "squeue"].map(which);
    if tools.iter().any(Option::is_none) {
        eprintln!("skipped: slurm_array_job_fills_a_postgres_study needs slurm-wlm and munge (apt-get install -y slurm-wlm munge)");
        return;
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !is_root {
        eprintln!(
            "skipped: slurm_array_job_fills_a_postgres_study must run as root to start slurmd"
        );
        return;
    }
    let Some(url) = postgres_url("slurm_array_job_fills_a_postgres_study") else {
        return;
    };
    let [munged, slurmctld, slurmd, sbatch, squeue] = tools.map(Option::unwrap);
    let dir = cluster::tiny_study_dir("slurm");
    let run = dir.join("slurm");
    for sub in ["state", "spool", "munge"] {
        std::fs::create_dir_all(run.join(sub)).unwrap();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();

    // munge: a fresh key, its own socket (no system daemon is touched).
    let key = run.join("munge/munge.key");
    let bytes: Vec<u8> = (0..1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&key, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let socket = run.join("munge/munge.socket");
    let mut daemons = Daemons(Vec::new());
    let munge_log = run.join("munge/munged.log");
    daemons.0.push(
        Command::new(munged)
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                run.join("munge/munged.pid").display()
            ))
            .arg(format!(
                "--seed-file={}",
                run.join("munge/munged.seed").display()
            ))
            .arg(format!("--log-file={}", munge_log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || socket.exists()),
        "munged did not start: {}",
        read(&munge_log)
    );

    let conf = run.join("slurm.conf");
    let r = |p: &str| run.join(p).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "ClusterName=pets-test\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n\
             SlurmctldPort={}\nSlurmdPort={}\nAuthType=auth/munge\nAuthInfo=socket={}\n\
             CredType=cred/munge\nStateSaveLocation={}\nSlurmdSpoolDir={}\n\
             SlurmctldPidFile={}\nSlurmdPidFile={}\nSlurmctldLogFile={}\nSlurmdLogFile={}\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n\
             SwitchType=switch/none\nReturnToService=2\nSchedulerType=sched/builtin\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nJobCompType=jobcomp/none\n\
             AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n\
             SlurmdParameters=config_overrides\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN\n\
             PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            socket.display(),
            r("state"),
            r("spool"),
            r("slurmctld.pid"),
            r("slurmd.pid"),
            r("slurmctld.log"),
            r("slurmd.log"),
        ),
    )
    .unwrap();
    let logs = || {
        format!(
            "slurmctld:\n{}\nslurmd:\n{}",
            read(&run.join("slurmctld.log")),
            read(&run.join("slurmd.log"))
        )
    };
    for (daemon, extra) in [(&slurmctld, ["-c", "-i"]), (&slurmd, ["-N", host.as_str()])] {
        daemons.0.push(
            Command::new(daemon)
                .arg("-D")
                .args(extra)
                .env("SLURM_CONF", &conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let ready = wait_until(Duration::from_secs(60), || {
        Command::new("sinfo")
            .args(["-h", "-o", "%T"])
            .env("SLURM_CONF", &conf)
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
    });
    assert!(ready, "the node never became idle\n{}", logs());

    let study = cluster::unique_study("slurm");
    let args = study_args(&dir, &study, &url);
    // PETS_ARGS is split on spaces by the script; the other worker flags come from it.
    let worker_flags: Vec<&String> = {
        let skip: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--study" || *a == "--storage")
            .flat_map(|(i, _)| [i, i + 1])
            .collect();
        args.iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .map(|(_, a)| a)
            .collect()
    };
    let pets_args = worker_flags
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        + " --stale-after 10";
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/pets-array.sbatch");
    let out = Command::new(sbatch)
        .args(["--parsable", "--array=0-3"])
        .arg(format!("--output={}/task-%a.log", dir.display()))
        .arg(format!("--chdir={}", dir.display()))
        .arg(&script)
        .env("SLURM_CONF", &conf)
        .env("PETS_STORAGE", &url)
        .env("PETS_STUDY", &study)
        .env("PETS_BIN", env!("CARGO_BIN_EXE_pets"))
        .env("PETS_ARGS", &pets_args)
        .env("PETS_CACHE", dir.join("cache"))
        .output()
        .unwrap();
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "sbatch: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );

    let finished = wait_until(Duration::from_secs(900), || {
        Command::new(&squeue)
            .args(["-h", "-j", &job])
            .env("SLURM_CONF", &conf)
            .output()
            // Empty once the array has left the queue (an error, once Slurm forgot the job).
            .is_ok_and(|o| o.stdout.is_empty())
    });
    let task_logs = (0..4)
        .map(|a| read(&dir.join(format!("task-{a}.log"))))
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert!(
        finished,
        "the array job did not finish\n{task_logs}\n{}",
        logs()
    );
    for a in 0..4 {
        assert!(
            task_logs.contains(&format!("array task {a} of job {job} on {host}")),
            "task {a} did not run\n{task_logs}"
        );
    }
    let store = open(&url);
    let rows = trials(store.as_ref(), &study);
    assert_completed_exactly_once(&rows, &dir.join("trials"), &study);
    let owners: std::collections::HashSet<&str> = rows
        .iter()
        .filter_map(|t| t.owner.as_deref())
        .filter_map(|o| o.split(" on ").next())
        .collect();
    assert!(
        owners.len() >= 2,
        "the trials were shared between tasks: {owners:?}\n{task_logs}"
    );
    drop(daemons);
    let _ = std::fs::remove_dir_all(&dir);
}
