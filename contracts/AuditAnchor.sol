// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IAuditAnchor} from "./interfaces/IAuditAnchor.sol";
import {IDataCatalog} from "./interfaces/IDataCatalog.sol";
import {IMemberRegistry} from "./interfaces/IMemberRegistry.sol";
import {Roles} from "./Roles.sol";

/// @title AuditAnchor
/// @notice See {IAuditAnchor}. Reads members and the catalog from the {ConsentLedger}.
contract AuditAnchor is IAuditAnchor {
    address private immutable _ledger;

    mapping(bytes32 documentId => Document) private _documents;
    Checkpoint[] private _checkpoints;

    struct Record {
        bytes32 kind;
        bytes32 commitment;
        uint64 anchoredAt;
    }

    mapping(bytes32 recordId => Record) private _records;

    constructor(address ledger) {
        _ledger = ledger;
    }

    modifier onlyAdmin() {
        if (!IMemberRegistry(_ledger).isActive(msg.sender, Roles.ADMIN)) revert AuditAnchorUnauthorized(msg.sender);
        _;
    }

    /// @notice The ledger whose members and catalog this anchor trusts.
    function ledger() external view returns (address) {
        return _ledger;
    }

    /// @inheritdoc IAuditAnchor
    function anchorDocument(bytes32 documentId, address subject, bytes32 resource, bytes32 commitment, address issuer)
        external
        onlyAdmin
    {
        if (_documents[documentId].subject != address(0)) revert AuditAnchorDocumentExists(documentId);
        if (commitment == 0) revert AuditAnchorInvalidCommitment(documentId);
        IDataCatalog.Resource memory entry = IDataCatalog(_ledger).resourceInfo(resource);
        if (entry.provider == address(0)) revert AuditAnchorUnknownResource(resource);
        IMemberRegistry registry = IMemberRegistry(_ledger);
        if (!registry.isActive(subject, Roles.SUBJECT)) revert AuditAnchorInvalidIssuer(subject, resource);
        bool mayIssue = issuer == subject || (issuer == entry.provider && registry.isActive(issuer, Roles.PROVIDER));
        if (!mayIssue) revert AuditAnchorInvalidIssuer(issuer, resource);
        _documents[documentId] = Document({
            commitment: commitment,
            subject: subject,
            issuer: issuer,
            anchoredAt: uint64(block.timestamp),
            shredded: false
        });
        emit DocumentAnchored(documentId, subject, resource, commitment, issuer);
    }

    /// @inheritdoc IAuditAnchor
    function shredDocument(bytes32 documentId) external onlyAdmin {
        Document storage doc = _documents[documentId];
        if (doc.subject == address(0)) revert AuditAnchorUnknownDocument(documentId);
        if (doc.shredded) revert AuditAnchorDocumentShredded(documentId);
        doc.shredded = true;
        emit DocumentShredded(documentId, doc.subject);
    }

    /// @inheritdoc IAuditAnchor
    function anchorCheckpoint(uint64 treeSize, bytes32 rootHash) external onlyAdmin returns (uint256 index) {
        uint256 n = _checkpoints.length;
        if (rootHash == 0 || treeSize == 0 || (n != 0 && treeSize <= _checkpoints[n - 1].treeSize)) {
            revert AuditAnchorInvalidCheckpoint(treeSize);
        }
        _checkpoints.push(Checkpoint({treeSize: treeSize, anchoredAt: uint64(block.timestamp), rootHash: rootHash}));
        emit CheckpointAnchored(n, treeSize, rootHash);
        return n;
    }

    /// @inheritdoc IAuditAnchor
    function anchorRecord(bytes32 recordId, bytes32 kind, bytes32 commitment) external onlyAdmin {
        if (_records[recordId].commitment != 0) revert AuditAnchorRecordExists(recordId);
        if (commitment == 0) revert AuditAnchorInvalidCommitment(recordId);
        _records[recordId] = Record({kind: kind, commitment: commitment, anchoredAt: uint64(block.timestamp)});
        emit RecordAnchored(recordId, kind, commitment);
    }

    /// @inheritdoc IAuditAnchor
    function record(bytes32 recordId) external view returns (bytes32 kind, bytes32 commitment, uint64 anchoredAt) {
        Record storage r = _records[recordId];
        return (r.kind, r.commitment, r.anchoredAt);
    }

    /// @inheritdoc IAuditAnchor
    function document(bytes32 documentId) external view returns (Document memory) {
        return _documents[documentId];
    }

    /// @inheritdoc IAuditAnchor
    function checkpointCount() external view returns (uint256) {
        return _checkpoints.length;
    }

    /// @inheritdoc IAuditAnchor
    function checkpoint(uint256 index) external view returns (Checkpoint memory) {
        return _checkpoints[index];
    }
}
