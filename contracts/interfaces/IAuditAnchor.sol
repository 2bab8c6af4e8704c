// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Quanchenglian audit anchor
/// @notice Commitments of vault documents (salted hashes, never content) and checkpoints of the
/// vault's release log (RFC 9162 Merkle tree size and root). Written by the platform operator
/// (an active ADMIN of the ledger); read by auditors.
interface IAuditAnchor {
    struct Document {
        bytes32 commitment;
        address subject;
        address issuer;
        uint64 anchoredAt;
        bool shredded;
    }

    struct Checkpoint {
        uint64 treeSize;
        uint64 anchoredAt;
        bytes32 rootHash;
    }

    /// @notice The caller is not an active ADMIN of the ledger.
    error AuditAnchorUnauthorized(address caller);
    /// @notice A document with this id is already anchored.
    error AuditAnchorDocumentExists(bytes32 documentId);
    /// @notice No document with this id is anchored.
    error AuditAnchorUnknownDocument(bytes32 documentId);
    /// @notice The document was already shredded.
    error AuditAnchorDocumentShredded(bytes32 documentId);
    /// @notice The issuer may not issue this resource to this subject (it must be the subject
    /// itself, or the resource's active PROVIDER), or the subject is not an active SUBJECT.
    error AuditAnchorInvalidIssuer(address issuer, bytes32 resource);
    /// @notice The resource is not in the catalog.
    error AuditAnchorUnknownResource(bytes32 resource);
    /// @notice A document's or record's commitment must not be zero (the argument is its id).
    error AuditAnchorInvalidCommitment(bytes32 documentId);
    /// @notice A record with this id is already anchored.
    error AuditAnchorRecordExists(bytes32 recordId);
    /// @notice A checkpoint must grow the tree (and a commitment or root must not be zero).
    error AuditAnchorInvalidCheckpoint(uint64 treeSize);

    event DocumentAnchored(
        bytes32 indexed documentId, address indexed subject, bytes32 indexed resource, bytes32 commitment, address issuer
    );
    event DocumentShredded(bytes32 indexed documentId, address indexed subject);
    event CheckpointAnchored(uint256 indexed index, uint64 treeSize, bytes32 rootHash);
    /// @notice A generic commitment (e.g. of a data-correction record) of some `kind` was anchored.
    event RecordAnchored(bytes32 indexed recordId, bytes32 indexed kind, bytes32 commitment);

    function anchorDocument(bytes32 documentId, address subject, bytes32 resource, bytes32 commitment, address issuer)
        external;

    function shredDocument(bytes32 documentId) external;

    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash) external returns (uint256 index);

    /// @notice Anchors `commitment` (non-zero) of the record `recordId` (unique) of `kind`.
    /// ADMIN only. Checks: record exists (AuditAnchorRecordExists), commitment zero
    /// (AuditAnchorInvalidCommitment).
    function anchorRecord(bytes32 recordId, bytes32 kind, bytes32 commitment) external;

    /// @notice An anchored record (all zero when unknown).
    function record(bytes32 recordId) external view returns (bytes32 kind, bytes32 commitment, uint64 anchoredAt);

    function document(bytes32 documentId) external view returns (Document memory);

    function checkpointCount() external view returns (uint256);

    function checkpoint(uint256 index) external view returns (Checkpoint memory);
}
