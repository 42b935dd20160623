#!/usr/bin/env bash
# A single-node SLURM cluster on 127.0.0.1 for the launcher tests (tests/test_cluster.py): munge, MariaDB,
# slurmdbd (so that `sacct` answers, as submitit asks it), slurmctld and slurmd, all with their files under
# STATE (default /tmp/refinenet-slurm) and their PIDs in STATE/pids/. Nothing in /etc is changed: clients
# find the cluster through SLURM_CONF=STATE/slurm.conf (written to STATE/env). Stop it with slurm_down.sh.
# Needs Debian's slurm-wlm, slurmdbd, munge and mariadb-server (tested with SLURM 22.05), and root.
set -euo pipefail
STATE=${1:-/tmp/refinenet-slurm}
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
if [ -d "$STATE/pids" ] && ls "$STATE"/pids/*.pid >/dev/null 2>&1; then
    echo "slurm_up: $STATE/pids holds PIDs of a running cluster; run slurm_down.sh $STATE first" >&2
    exit 1
fi
rm -rf "$STATE"
mkdir -p "$STATE"/{pids,log,spool,ctld,munge,mysql}
chmod 700 "$STATE/munge"

start() {  # start NAME CMD...: run a daemon in the foreground of a background job, keep its PID
    local name=$1; shift
    setsid "$@" >"$STATE/log/$name.out" 2>&1 < /dev/null &
    echo $! > "$STATE/pids/$name.pid"
}
wait_for() {  # wait_for WHAT SECONDS CMD...
    local what=$1 seconds=$2; shift 2
    for _ in $(seq $((seconds * 2))); do
        if timeout 10 "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "slurm_up: $what did not come up in ${seconds}s; logs in $STATE/log" >&2
    tail -n 20 "$STATE"/log/* >&2 || true
    exit 1
}

# munge: SLURM's clients (sacctmgr, sacct) only look for munged's default socket, so a munged already
# serving it is used; else one is started there with its own key (munged refuses root without --force).
if timeout 5 bash -c "munge -n | unmunge" >/dev/null 2>&1; then
    echo "slurm_up: using the munged already running"
else
    mungekey --create --keyfile="$STATE/munge/munge.key" 2>/dev/null \
        || dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
    chmod 400 "$STATE/munge/munge.key"
    mkdir -p /run/munge
    start munged munged --foreground --force --key-file="$STATE/munge/munge.key" \
        --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/log/munged.log"
    wait_for munged 20 bash -c "munge -n | unmunge"
fi

# MariaDB for slurmdbd, TCP on 127.0.0.1 only
MYSQL_PORT=${MYSQL_PORT:-3316}
mariadb-install-db --no-defaults --datadir="$STATE/mysql" --user=root --auth-root-authentication-method=normal \
    >"$STATE/log/mariadb-install.out" 2>&1
start mariadbd mariadbd --no-defaults --datadir="$STATE/mysql" --user=root --bind-address=127.0.0.1 \
    --port="$MYSQL_PORT" --socket="$STATE/mysql.sock" --pid-file="$STATE/mysql.pid" --skip-log-bin
wait_for mariadb 60 mariadb --no-defaults --socket="$STATE/mysql.sock" -uroot -e "select 1"
mariadb --no-defaults --socket="$STATE/mysql.sock" -uroot -e \
    "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

# Configuration. CgroupPlugin=disabled does not exist in 22.05: cgroup/v1 with proctrack/linuxproc and
# task/none needs no cgroup hierarchy. cons_tres + CR_Core_Memory: a job gets the CPUs and memory it asks for.
cat > "$STATE/slurm.conf" <<CONF
ClusterName=refinenet-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# as university clusters do: a job without --mem gets memory per CPU, not the whole node
DefMemPerCPU=$(( MEM_MB / CPUS ))
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# SLURM's default grace after SIGTERM: a training step under way ends and checkpoints before SIGKILL
KillWait=30
MinJobAge=300
InactiveLimit=0
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
cat > "$STATE/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
CONF
cat > "$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chmod 600 "$STATE/slurmdbd.conf"
export SLURM_CONF="$STATE/slurm.conf"
echo "export SLURM_CONF=$SLURM_CONF" > "$STATE/env"

start slurmdbd slurmdbd -D
wait_for slurmdbd 60 sacctmgr -i show cluster
sacctmgr -i add cluster refinenet-test >/dev/null 2>&1 || true
start slurmctld slurmctld -D -i
wait_for slurmctld 60 scontrol ping
start slurmd slurmd -D -N "$NODE"
wait_for "node $NODE" 60 bash -c "sinfo -h -N -o %T | grep -qE '^idle'"
echo "slurm_up: SLURM $(sinfo --version | awk '{print $2}') on $NODE ($CPUS CPUs), state in $STATE; source $STATE/env"
