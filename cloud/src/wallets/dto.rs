//! Wallet request and response bodies.

use crate::model::{TicketId, UserId, WalletId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /wallets`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum CreateWallet {
    /// The caller's custodial wallet (created if missing; the same one after).
    Custodial {
        /// Admins may create it for another user.
        user_id: Option<UserId>,
    },
    /// An address the caller controls, proved by signing the challenge
    /// (`GET /wallets/challenge?address=`) with EIP-191 `personal_sign`.
    External {
        /// 0x address.
        address: String,
        /// 65-byte signature, 0x hex.
        signature: String,
    },
}

/// A wallet (never its key).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletView {
    /// Id.
    pub id: WalletId,
    /// Owner.
    pub user_id: UserId,
    /// 0x address.
    pub address: String,
    /// `custodial` or `external`.
    pub kind: String,
    /// Balances.
    pub balances: Balances,
    /// Created (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

/// What the wallet holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Balances {
    /// Ticket tokens held, as indexed from the chain.
    pub tickets: i64,
    /// Native coin balance, wei (decimal), when the chain answers.
    pub native_wei: Option<String>,
}

/// `GET /wallets/challenge`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChallengeQuery {
    /// The address to link.
    pub address: String,
}

/// The message to sign.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Challenge {
    /// Sign exactly this text with EIP-191 `personal_sign`.
    pub message: String,
}

/// A ticket token in a wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NftView {
    /// Contract, 0x.
    pub contract: String,
    /// Token id (decimal).
    pub token_id: String,
    /// The ticket it stands for.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub ticket_id: Option<TicketId>,
    /// Metadata URL (`tokenURI`).
    pub token_uri: String,
    /// Block of the transfer that brought it.
    pub block_number: i64,
}

/// `POST /wallets/{id}/nfts`: record a token the chain says this wallet
/// holds (read with `ownerOf` before it is recorded).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordNft {
    /// Contract, 0x.
    pub contract: String,
    /// Token id (decimal).
    pub token_id: String,
}

/// One entry of a wallet's history, as indexed from the chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WalletTxView {
    /// `mint`, `burn`, `send` or `receive` (seen from this wallet).
    #[serde(rename = "type")]
    pub kind: String,
    /// Contract.
    pub contract: String,
    /// Token id.
    pub token_id: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// Transaction hash.
    pub tx_hash: String,
    /// Block.
    pub block_number: i64,
}

/// `POST /wallets/{id}/transactions`. Only `send` can be requested: it
/// withdraws a ticket's token from the custodial wallet to one of the
/// caller's registered external wallets (events that allow it). Mints,
/// burns and receipts are recorded from the chain only.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWalletTx {
    /// Must be `send`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The ticket whose token to send.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// One of the caller's external wallets.
    pub to_wallet_id: WalletId,
}

/// A requested send.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SendAccepted {
    /// The ticket.
    #[schema(value_type = String, format = Uuid)]
    pub ticket_id: TicketId,
    /// Destination address.
    pub to: String,
    /// `pending`: the minting worker sends it (see the order's mint transactions).
    pub status: String,
}
