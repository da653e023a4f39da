//! An event-sourced bank account on Hydra.
//!
//! Usage: `cargo run -p bank -- [--data DIR | --api URL] COMMAND`
//!
//! - `open ACCOUNT --owner NAME`, `deposit ACCOUNT AMOUNT`,
//!   `withdraw ACCOUNT AMOUNT`, `balance ACCOUNT`, `history ACCOUNT`.
//!
//! Each account is a stream `account-<id>`. The balance is the fold of its
//! events; a withdrawal may never take it below zero, and two concurrent
//! withdrawals must not both spend the same money. Hydra's expected
//! versions enforce that: a withdrawal reads the account at version v,
//! checks the balance, and appends with `Exact(v)`; if anything was
//! appended in between, the append is refused and the withdrawal starts
//! over from the new state. Every `--snapshot-every` events a snapshot of
//! the balance is saved, so that a balance replays only what came after.
//!
//! The same code runs embedded (the event log in this process, `--data`)
//! or against a running `hydra daemon` (`--api`, through `hydra-client`):
//! it is written against [`EventStore`], which both are.

mod ledger;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

use hydra_client::Client;
use hydra_eventlog::{EventLog, EventStore, Options};

use crate::ledger::{Conflict, Ledger};

#[derive(Parser)]
#[command(name = "bank", about = "An event-sourced bank account on Hydra")]
struct Cli {
    /// Data directory (embedded mode).
    #[arg(
        long,
        env = "HYDRA_DATA",
        default_value = "hydra-data",
        conflicts_with = "api"
    )]
    data: std::path::PathBuf,
    /// A running hydra daemon (daemon mode).
    #[arg(long, env = "HYDRA_API")]
    api: Option<String>,
    /// Save a snapshot every N events.
    #[arg(long, default_value_t = 5)]
    snapshot_every: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Open {
        account: String,
        #[arg(long)]
        owner: String,
    },
    Deposit {
        account: String,
        amount: u64,
    },
    Withdraw {
        account: String,
        amount: u64,
    },
    Balance {
        account: String,
    },
    History {
        account: String,
    },
}

/// The account's events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

/// The account's state: the fold of its events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub owner: Option<String>,
    pub balance: u64,
}

impl Account {
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Opened { owner } => self.owner = Some(owner.clone()),
            Event::Deposited { amount } => self.balance += amount,
            Event::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

fn stream(account: &str) -> String {
    format!("account-{account}")
}

/// Appends `decide(state)` at the state's version, retrying on a conflict.
async fn transact<S: EventStore>(
    ledger: &Ledger<S>,
    account: &str,
    every: u64,
    decide: impl Fn(&Account) -> Result<Event>,
) -> Result<(Account, u64)> {
    let s = stream(account);
    loop {
        let (state, version) = ledger.load(&s).await?;
        if state.owner.is_none() {
            bail!("account {account} is not open");
        }
        let event = decide(&state)?;
        match ledger.append(&s, version, &event).await? {
            Ok(v) => {
                let mut next = state;
                next.apply(&event);
                if (v + 1) % every == 0 {
                    ledger.save_snapshot(&s, v, &next).await?;
                }
                return Ok((next, v));
            }
            Err(Conflict) => continue,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bank: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The same commands on the embedded log or a daemon.
fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let every = cli.snapshot_every.max(1);
    match cli.api.as_deref() {
        Some(url) => runtime.block_on(command(&Ledger(Client::new(url)?), every, cli.command)),
        None => {
            let log = EventLog::open_dir(&cli.data, Options::default())?;
            runtime.block_on(command(&Ledger(log), every, cli.command))
        }
    }
}

async fn command<S: EventStore>(ledger: &Ledger<S>, every: u64, command: Command) -> Result<()> {
    match command {
        Command::Open { account, owner } => {
            let s = stream(&account);
            match ledger.append(&s, None, &Event::Opened { owner }).await? {
                Ok(_) => println!("opened {account}"),
                Err(Conflict) => bail!("account {account} is already open"),
            }
        }
        Command::Deposit { account, amount } => {
            let (a, _) =
                transact(ledger, &account, every, |_| Ok(Event::Deposited { amount })).await?;
            println!("balance {}", a.balance);
        }
        Command::Withdraw { account, amount } => {
            let (a, _) = transact(ledger, &account, every, |a| {
                if a.balance < amount {
                    bail!(
                        "insufficient funds: balance {}, withdrawal {amount}",
                        a.balance
                    );
                }
                Ok(Event::Withdrawn { amount })
            })
            .await?;
            println!("balance {}", a.balance);
        }
        Command::Balance { account } => {
            let (a, _) = ledger.load(&stream(&account)).await?;
            if a.owner.is_none() {
                bail!("account {account} is not open");
            }
            println!("{}", a.balance);
        }
        Command::History { account } => {
            for (v, e) in ledger.history(&stream(&account)).await? {
                println!("{v}\t{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}
